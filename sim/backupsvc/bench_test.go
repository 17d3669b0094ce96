package backupsvc

import (
	"context"
	"testing"

	"github.com/backupd/backupd/sim/fileset"
)

// benchmarkServe backs the device up repeatedly through a unix socket to
// a host that discards file content, and reports the content rate.
func benchmarkServe(b *testing.B, spec fileset.Spec) {
	set, err := fileset.New(spec)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(set.TotalSize())
	b.ReportAllocs()
	tmp := b.TempDir()
	for b.Loop() {
		dev, hc := connPair(b)
		host := newTestHost()
		host.discard = true
		done := make(chan error, 1)
		go func() {
			done <- Serve(context.Background(), dev, Config{UDID: udid, Set: set, TempDir: tmp})
		}()
		if err := host.run(hc, backupReq(true)); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if host.finalCode() != 0 || host.gotBytes < set.TotalSize() { // plus the manifests
			b.Fatalf("backup ended with %d after %d of %d bytes", host.finalCode(), host.gotBytes, set.TotalSize())
		}
		dev.Close()
		hc.Close()
	}
}

// BenchmarkFullBackupServe: 1 GiB in 16 MiB files, the rate a large
// camera roll goes at.
func BenchmarkFullBackupServe(b *testing.B) {
	benchmarkServe(b, fileset.Spec{Seed: 1, Files: 64, MinSize: 16 << 20, MaxSize: 16 << 20})
}

// BenchmarkFullBackupServeMixed: 5000 files of 1 KiB to 1 MiB,
// log-uniform, where per-file costs and Manifest.db count.
func BenchmarkFullBackupServeMixed(b *testing.B) {
	benchmarkServe(b, fileset.Spec{Seed: 1, Files: 5000, MinSize: 1 << 10, MaxSize: 1 << 20})
}
