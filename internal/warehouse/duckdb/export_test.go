package duckdb

// SetCompactRows makes the writer fold the rollup deltas once they reach
// n rows (1: at every load).
func (s *Store) SetCompactRows(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compactRows = n
}
