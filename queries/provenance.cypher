// name: provenance
// description: Where a compound's facts came from: for the node and each of its relationships, the sources and the ingest run (files, sha256, status) that last wrote them.
// param: compound string Compound.id, pert_id, DrugBank id or name (case-insensitive)
MATCH (c:Compound)
WHERE c.id = $compound OR c.pert_id = $compound OR c.drugbank_id = $compound
   OR toLower(c.name) = toLower($compound)
CALL (c) {
  RETURN 'node' AS fact, 'Compound ' + c.id AS what, c.ingest_run AS run_id, c.sources AS sources
  UNION ALL
  MATCH (c)-[r]->(n)
  WHERE r.ingest_run IS NOT NULL
  RETURN type(r) AS fact, coalesce(n.symbol, n.name, n.sig_id, n.id) AS what, r.ingest_run AS run_id,
         [r.source] AS sources
}
OPTIONAL MATCH (run:IngestRun {id: run_id})
RETURN fact, what, sources, run_id, run.status AS status, run.files AS files, run.sha256 AS sha256,
       toString(run.ended) AS ended
ORDER BY fact, what
