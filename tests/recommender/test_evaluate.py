"""The CSV path and the evaluation table, on a tiny file in the Online Retail format."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import timedelta
from pathlib import Path

import pytest

from plugin.cli import main
from recommender import evaluate, retail
from recommender.model import Hyper
from recommender.train import TrainConfig
from tests.recommender import synthetic

HEADER = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]


def _write(path: Path, rows: list[list[object]]) -> None:
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)


def _code(product: str) -> str:
    category, number = product.split("-")
    return f"{10000 + 100 * ['tea', 'cups', 'wine', 'glasses'].index(category) + int(number)}"


def _rows() -> list[list[object]]:
    rows: list[list[object]] = []
    for n, line in enumerate(synthetic.history(members_per_group=30, days=150)):
        category = line.product_id.split("-")[0].upper()
        rows.append(
            [
                f"5{n:05d}",
                _code(line.product_id),
                f"NICE {category}",
                line.quantity,
                line.placed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "2.50",
                10000 + int(line.customer_id[1:]) + (0 if line.customer_id[0] == "a" else 500),
                "United Kingdom",
            ]
        )
    return rows


class TestRetailCsv:
    def test_guests_non_products_and_cancellations(self, tmp_path: Path) -> None:
        path = tmp_path / "retail.csv.gz"
        _write(
            path,
            [
                [
                    "536365",
                    "85123A",
                    "WHITE HANGING HEART T-LIGHT HOLDER",
                    6,
                    "2010-12-01T08:26:00Z",
                    2.55,
                    17850,
                    "UK",
                ],
                [
                    "536366",
                    "85123A",
                    "WHITE HANGING HEART T-LIGHT HOLDER",
                    4,
                    "2010-12-02T08:26:00Z",
                    2.55,
                    17850,
                    "UK",
                ],
                [
                    "C536367",
                    "85123A",
                    "WHITE HANGING HEART T-LIGHT HOLDER",
                    -5,
                    "2010-12-03T08:26:00Z",
                    2.55,
                    17850,
                    "UK",
                ],
                ["536368", "POST", "POSTAGE", 1, "2010-12-01T08:26:00Z", 18.0, 17850, "UK"],
                ["536369", "71053", "WHITE METAL LANTERN", 6, "2010-12-01T08:26:00Z", 3.39, "", "UK"],
                ["536370", "71053", "WHITE METAL LANTERN", 2, "2010-12-01T08:26:00Z", 3.39, 12583, "France"],
            ],
        )
        purchases, catalogue, facts = retail.load(path)
        assert catalogue.product.tolist() == ["71053", "85123A"]
        assert catalogue.category.tolist() == ["LANTERN", "HOLDER"]
        assert catalogue.tags[1] == ("HANGING", "HEART", "T-LIGHT", "WHITE")
        got = sorted(
            zip(
                purchases.member.tolist(),
                purchases.product.tolist(),
                purchases.quantity.tolist(),
                strict=True,
            )
        )
        # 6 + 4 bought, 5 cancelled: taken off the newest purchase first (4 -> 0, then 6 -> 5).
        assert got == [("12583", "71053", 2.0), ("17850", "85123A", 5.0)]
        assert dict(zip(facts.member.tolist(), facts.segment.tolist(), strict=True))["12583"] == "France"


def test_evaluation_beats_popularity_on_structured_data(tmp_path: Path) -> None:
    path = tmp_path / "retail.csv.gz"
    _write(path, _rows())
    purchases, catalogue, facts = retail.load(path)
    config = TrainConfig(hyper=Hyper(components=16, epochs=10), history_days=400)
    cut = synthetic.START + timedelta(days=120)
    results = evaluate.evaluate_purchases(
        purchases, catalogue, facts, cuts=[cut], weeks=4, k=5, config=config
    )
    assert len(results) == 1
    rows = {(r.method, r.target): r for r in results[0].rows}
    assert set(evaluate.BASELINES) <= {m for m, _ in rows}
    assert rows["patron_mixed", "any"].precision >= rows["popular_all_time", "any"].precision
    assert rows["patron_buy_again", "any"].precision > 0
    assert 0 <= rows["patron_discover", "new"].coverage <= 1
    table = evaluate.table(results, 5)
    assert "| patron_mixed |" in table
    assert "any P@5" in table
    assert evaluate.as_json(results)[0]["cut"] == cut.date().isoformat()


def test_patron_evaluate_csv_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "retail.csv.gz"
    _write(path, _rows())
    cut = (synthetic.START + timedelta(days=120)).date().isoformat()
    argv = [
        "evaluate",
        "--csv",
        str(path),
        "--k",
        "5",
        "--epochs",
        "3",
        "--threads",
        "1",
        "--cut",
        cut,
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["cut"] == cut
    assert {row["method"] for row in out[0]["rows"]} == set(evaluate.BASELINES + evaluate.PATRON)
