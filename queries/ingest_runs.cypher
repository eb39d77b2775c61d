// name: ingest_runs
// description: Every ingest run with its source, status, attempts, files and counts, newest first.
MATCH (r:IngestRun)
RETURN r.id AS run, r.source AS source, r.status AS status, r.attempts AS attempts,
       r.nodes_created AS nodes_created, r.rels_created AS rels_created,
       r.rels_missing_endpoint AS rels_missing_endpoint, r.files AS files, r.error AS error,
       toString(r.ended) AS ended
ORDER BY r.started DESC
