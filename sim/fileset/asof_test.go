package fileset

import "testing"

func TestAsOfGivesAnOlderGeneration(t *testing.T) {
	s, err := New(Spec{Seed: 3, Files: 50, MinSize: 1, MaxSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	before := s.Files()
	changed := s.Mutate(0.2, 9)
	if len(changed) == 0 {
		t.Fatal("nothing mutated")
	}
	for _, i := range changed {
		old, now := before[i], s.File(i)
		tests := []struct {
			gen  uint64
			want File
		}{{1, old}, {now.Generation, now}}
		for _, tt := range tests {
			got, ok := s.AsOf(old.FileID, tt.gen)
			if !ok {
				t.Fatalf("AsOf(%s, %d) not found", old.FileID, tt.gen)
			}
			if got.Size != tt.want.Size || !got.ModTime.Equal(tt.want.ModTime) || Hash(got) != Hash(tt.want) {
				t.Errorf("file %d generation %d: size %d hash %x, want size %d hash %x", i, tt.gen, got.Size, Hash(got), tt.want.Size, Hash(tt.want))
			}
		}
		if Hash(old) == Hash(now) {
			t.Errorf("file %d: mutation kept the content", i)
		}
	}
	if _, ok := s.AsOf("nope", 1); ok {
		t.Error("AsOf found an unknown fileID")
	}
	if _, ok := s.AsOf(before[0].FileID, 0); ok {
		t.Error("AsOf took generation 0")
	}
}
