package intake

// Queued is how many creations wait for a writer, for tests that need a
// batch to form before they let the writer go.
func Queued(s *Service) int { return len(s.committer.queue) }
