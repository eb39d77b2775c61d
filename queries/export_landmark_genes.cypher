// name: export_landmark_genes
// description: Landmark gene symbols sorted ascending: the positions of every Signature.z_landmark list.
MATCH (g:Gene) WHERE g.is_landmark = true
RETURN g.symbol AS symbol ORDER BY symbol
