"""The store's program document (marketer keys): read, publish with If-Match, preview."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import HeaderParameter, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_428_PRECONDITION_REQUIRED

from loyalty import program_preview, programs
from loyalty.errors import PreconditionFailed
from loyalty.program import Program
from loyalty.program_preview import ProgramPreview
from loyalty.repository import Connection
from loyalty.stores import Principal, Scope
from plugin.auth import requires
from plugin.openapi import problems
from plugin.request_bodies import PROGRAM_MAX_BODY_BYTES
from plugin.runtime import Runtime

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        description='The ETag of the version the change is based on, e.g. `"v3"`',
    ),
]


def etag(version: int) -> str:
    """The program's ETag: its version, quoted."""
    return f'"v{version}"'


def expected_version(if_match: str | None, *, current: int) -> int:
    """The version an If-Match names: `current` when it lists the current ETag (or is `*`).

    A missing If-Match is refused with 428, so a client cannot overwrite a program it never read;
    one naming only other versions is stale (412).
    """
    if if_match is None or not if_match.strip():
        raise HTTPException(
            status_code=HTTP_428_PRECONDITION_REQUIRED,
            detail='send If-Match with the ETag from GET /v1/program, e.g. If-Match: "v3"',
        )
    tags = [tag.strip().removeprefix("W/") for tag in if_match.split(",")]
    if "*" in tags or etag(current) in tags:
        return current
    raise PreconditionFailed(
        f"If-Match {if_match} does not name the live program {etag(current)}: "
        "fetch it again and reapply your change",
        current_version=current,
    )


class ProgramController(Controller):
    path = "/v1/program"
    opt = requires(Scope.marketer)
    tags = ["program"]  # noqa: RUF012

    @get("/", summary="The live program")
    async def read(
        self, conn: NamedDependency[Connection], principal: NamedDependency[Principal]
    ) -> Response[Program]:
        """The store's live program document with its `version`; the `ETag` header names the version."""
        program = await programs.live_program(conn, store_id=principal.store_id)
        return Response(program, headers={"ETag": etag(program.version or 0)})

    @put(
        "/",
        responses=problems(412, 428),
        request_max_body_size=PROGRAM_MAX_BODY_BYTES,
        summary="Publish a new program version",
    )
    async def replace(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        data: JSONBody[Program],
        if_match: IfMatch = None,
    ) -> Response[Program]:
        """Publish the document as the next version and re-evaluate every member's tier against it.

        Needs `If-Match` with the current ETag: 428 without one, 412 when another version was
        published since. `version` in the body is ignored. 422 names the invalid field.
        """
        current = await programs.live_version(conn, store_id=principal.store_id)
        published = await programs.publish(
            conn,
            store_id=principal.store_id,
            program=data,
            expected_version=expected_version(if_match, current=current),
            actor=f"key:{principal.key_id}",
            now=runtime.clock(),
        )
        return Response(published, headers={"ETag": etag(published.version or 0)})

    @post(
        "/preview",
        status_code=HTTP_200_OK,
        request_max_body_size=PROGRAM_MAX_BODY_BYTES,
        summary="Preview a program change",
    )
    async def preview(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        data: JSONBody[Program],
    ) -> ProgramPreview:
        """What publishing the candidate now would do: members moving tier (from → to counts),
        members who would enter their downgrade grace, the change in the outstanding points'
        value, the points a typical order would earn per tier, and the gifts the candidate's care
        triggers would give in the next 30 days with the budget they would use, per trigger.
        Changes nothing.
        """
        return await program_preview.preview(
            conn, store_id=principal.store_id, candidate=data, now=runtime.clock()
        )
