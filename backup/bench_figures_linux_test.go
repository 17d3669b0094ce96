package backup

import (
	"slices"
	"testing"
	"time"
)

// toolFigures gathers one tool's measured runs of a benchmark; the
// figures reported are medians over the rounds (peak RSS: the highest),
// so one run disturbed by the other helpers of a shared machine does not
// move them.
type toolFigures struct {
	wall, user, sys []time.Duration
	maxRSS          int64
}

func (f *toolFigures) add(m measured) {
	f.wall = append(f.wall, m.wall)
	f.user = append(f.user, m.user)
	f.sys = append(f.sys, m.sys)
	f.maxRSS = max(f.maxRSS, m.maxRSS)
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpu is the median of user+sys over the rounds.
func (f *toolFigures) cpu() time.Duration {
	sum := make([]time.Duration, len(f.user))
	for i := range f.user {
		sum[i] = f.user[i] + f.sys[i]
	}
	return median(sum)
}

// report puts one tool's figures under name: wall time, user and sys
// CPU, CPU per GiB received and per file, peak RSS. bytes and files are
// one round's content.
func (f *toolFigures) report(b *testing.B, name string, bytes, files int64) {
	if len(f.wall) == 0 {
		return
	}
	b.ReportMetric(median(f.wall).Seconds(), name+"-s")
	b.ReportMetric(median(f.user).Seconds(), name+"-user-s")
	b.ReportMetric(median(f.sys).Seconds(), name+"-sys-s")
	if bytes > 0 {
		b.ReportMetric(f.cpu().Seconds()/(float64(bytes)/(1<<30)), name+"-cpu-s/GiB")
	}
	if files > 0 {
		b.ReportMetric(float64(f.cpu().Microseconds())/float64(files), name+"-cpu-us/file")
	}
	b.ReportMetric(float64(f.maxRSS)/(1<<20), name+"-maxrss-MiB")
}

// ratio is a's median wall time over b's.
func ratio(a, b *toolFigures) float64 {
	if len(a.wall) == 0 || len(b.wall) == 0 {
		return 0
	}
	return median(a.wall).Seconds() / median(b.wall).Seconds()
}
