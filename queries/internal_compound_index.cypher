// name: internal_compound_index
// description: Every compound's key, InChIKey, names, sources and aliases, for cross-source structure matching during ingest.
MATCH (c:Compound)
RETURN c.id AS id, c.inchikey AS inchikey,
       [n IN [c.name] WHERE n IS NOT NULL] + coalesce(c.synonyms, []) AS names,
       coalesce(c.sources, []) AS sources,
       coalesce(c.source_ids, []) AS source_ids,
       coalesce(c.inchikey_aliases, []) AS aliases
