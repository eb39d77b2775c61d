// name: compounds_by_moa
// description: Compounds annotated with a mechanism of action, with the sources that say so and whether they have L1000 signatures.
// param: moa string MoA name (case-insensitive), e.g. 'egfr inhibitor'
MATCH (m:MoA) WHERE m.name = toLower(trim($moa))
MATCH (c:Compound)-[h:HAS_MOA]->(m)
WITH m, c, collect(DISTINCT h.source) AS sources
OPTIONAL MATCH (c)-[:HAS_SIGNATURE]->(s:Signature)
RETURN m.display_name AS moa, c.id AS id, c.name AS name, sources, count(s) AS n_signatures
ORDER BY n_signatures DESC, name
