// name: internal_compound_nodes
// description: Every compound with all its properties, for resolving compound identity across sources after an ingest.
MATCH (c:Compound)
RETURN properties(c) AS props
ORDER BY c.id
