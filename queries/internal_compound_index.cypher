// name: internal_compound_index
// description: Every compound's key, InChIKey, names and sources, for cross-source structure matching during ingest.
MATCH (c:Compound)
RETURN c.id AS id, c.inchikey AS inchikey,
       [n IN [c.name, c.pert_iname] WHERE n IS NOT NULL] + coalesce(c.synonyms, []) AS names,
       coalesce(c.sources, []) AS sources
