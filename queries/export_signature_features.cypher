// name: export_signature_features
// description: Landmark z-vector and quality fields of the given signatures, for Signature node features.
// param: keys  list  Signature.sig_id values
UNWIND $keys AS k
MATCH (s:Signature {sig_id: k})
RETURN k AS key, s.z_landmark AS z, s.cc_mean AS cc_mean, s.n_replicates AS n_replicates, s.tas AS tas
