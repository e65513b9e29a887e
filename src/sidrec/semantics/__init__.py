"""Token-level semantics for TS-Rec: what the items behind each SID token have in common."""
