-- The care scan's `service_recovery` trigger reads resolved cases through this function (0011 made
-- a placeholder so the care engine could land before service cases). A case earns recovery when it
-- was resolved after a breached promise, or with high or urgent priority.
CREATE OR REPLACE FUNCTION resolved_cases_for_recovery(p_store_id text, p_since timestamptz, p_until timestamptz)
RETURNS TABLE (customer_id text, case_id text, resolved_at timestamptz, reason text)
LANGUAGE sql STABLE
AS $$
    SELECT c.customer_id, c.case_id, c.resolved_at,
           CASE
               WHEN c.first_response_breached OR c.resolution_breached
                   THEN 'case ' || c.case_id || ' resolved after a missed promise'
               ELSE 'case ' || c.case_id || ' (' || c.priority || ' priority) resolved'
           END
    FROM cases AS c
    WHERE c.store_id = p_store_id
      AND c.resolved_at > p_since AND c.resolved_at <= p_until
      AND (c.first_response_breached OR c.resolution_breached OR c.priority IN ('high', 'urgent'))
$$;
