// name: export_node_keys
// description: One page of node keys of one label, in key order (keyset paging), for the PyG exporter (kg/export.py).
// param: label  string  Compound, Signature, CellLine, Gene, GOTerm or MoA
// param: last   string  last key of the previous page ('' for the first page)
// param: limit  int     page size
// Labels and types cannot be parameters without losing the key index, so there is one UNION branch
// per label or type; the guard (a projected parameter, tested before the MATCH) skips the others at no cost.
CALL () {
  WITH $label AS l WHERE l = 'Compound'
  MATCH (n:Compound) WHERE n.id > $last RETURN n.id AS key ORDER BY key LIMIT $limit
  UNION ALL
  WITH $label AS l WHERE l = 'Signature'
  MATCH (n:Signature) WHERE n.sig_id > $last RETURN n.sig_id AS key ORDER BY key LIMIT $limit
  UNION ALL
  WITH $label AS l WHERE l = 'CellLine'
  MATCH (n:CellLine) WHERE n.cell_id > $last RETURN n.cell_id AS key ORDER BY key LIMIT $limit
  UNION ALL
  WITH $label AS l WHERE l = 'Gene'
  MATCH (n:Gene) WHERE n.symbol > $last RETURN n.symbol AS key ORDER BY key LIMIT $limit
  UNION ALL
  WITH $label AS l WHERE l = 'GOTerm'
  MATCH (n:GOTerm) WHERE n.go_id > $last RETURN n.go_id AS key ORDER BY key LIMIT $limit
  UNION ALL
  WITH $label AS l WHERE l = 'MoA'
  MATCH (n:MoA) WHERE n.name > $last RETURN n.name AS key ORDER BY key LIMIT $limit
}
RETURN key
