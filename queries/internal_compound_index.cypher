// name: internal_compound_index
// description: Every compound's key, source records and InChIKey aliases, to place a source's records on existing compounds during ingest.
MATCH (c:Compound)
RETURN c.id AS id,
       coalesce(c.source_ids, []) AS source_ids,
       coalesce(c.inchikey_aliases, []) AS aliases
