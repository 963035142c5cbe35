"""The pure core: derivations, the Deriver and the live state, against a store protocol; no servers."""
