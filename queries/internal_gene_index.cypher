// name: internal_gene_index
// description: Every gene's symbol, Entrez id and landmark flag, for mapping Entrez ids and landmark order during ingest.
MATCH (g:Gene)
RETURN g.symbol AS symbol, g.entrez_id AS entrez_id, g.is_landmark AS is_landmark
