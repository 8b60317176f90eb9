"""Wire protocols: pure translation between each API's JSON/SSE and the canonical model."""
