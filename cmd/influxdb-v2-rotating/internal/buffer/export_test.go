package buffer

// Full reports whether the buffer is at one of its limits.
func (b *Buffer) Full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q)-b.head >= b.maxMetrics || b.bytes >= b.maxBytes
}
