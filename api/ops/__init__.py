"""Operations: liveness, readiness and metrics (`health`), and the operator endpoints
under `/ops` (`routes`, the page in `page`), which answer to the operator token
(`guards`)."""
