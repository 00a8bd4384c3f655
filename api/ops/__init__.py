"""Operations: liveness, readiness and metrics (`health`) and the operator endpoints
under `/ops` (`routes`), which answer to the operator token (`guards`)."""
