-- The chain's head in one row. An append chains its entries after this hash and moves it in
-- the statement that inserts them (`UPDATE … WHERE hash = <expected>`): the row lock serialises
-- appenders across processes and transactions (as the advisory lock 7272003 did, which now only
-- the retention purge takes), and a stale expectation updates nothing, so the entries are
-- chained again after the real head. Editing this row cannot hide anything: the next entry would
-- then not follow the last one, which `verify` reports.
CREATE TABLE audit_head (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  hash text NOT NULL
);
INSERT INTO audit_head (id, hash) VALUES (true, COALESCE(
  (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),
  (SELECT hash FROM audit_anchor WHERE id),
  repeat('0', 64)));
