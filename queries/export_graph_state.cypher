// name: export_graph_state
// description: Every IngestRun's id, status and end time: the export cache is valid while these are unchanged.
MATCH (r:IngestRun)
RETURN r.id AS id, r.status AS status, toString(r.ended) AS ended
ORDER BY id
