package fileset

// AsOf returns the regular file named fileID as it was at generation gen,
// with the size, time and content that generation had, so that a restore
// can be checked against an older backup after the set changed. ok is
// false for an unknown fileID or a generation before the first.
func (s *Set) AsOf(fileID string, gen uint64) (File, bool) {
	if gen < 1 {
		return File{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.indexLocked(fileID)
	if !ok {
		return File{}, false
	}
	f := s.files[i]
	f.Deleted = false
	s.setGeneration(&f, gen)
	return f, true
}

// indexLocked finds a regular file by its ID. The IDs never change, so
// the index is built once. s.mu is held, for reading at least.
func (s *Set) indexLocked(fileID string) (int, bool) {
	s.byIDOnce.Do(func() {
		s.byID = make(map[string]int, len(s.files))
		for i, f := range s.files {
			s.byID[f.FileID] = i
		}
	})
	i, ok := s.byID[fileID]
	return i, ok
}
