package loopback

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"localhost:9737", true},
		{"LOCALHOST.:80", true},
		{"app.localhost:1", true},
		{"127.0.0.1:7373", true},
		{"127.9.9.9", true},
		{"[::1]:7373", true},
		{"::1", true},
		{"evil.example:9737", false},
		{"localhost.evil.example", false},
		{"10.0.0.1:9737", false},
		{"0.0.0.0", false},
		{"backupd", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := Host(tt.host); got != tt.want {
			t.Errorf("Host(%q) = %t, want %t", tt.host, got, tt.want)
		}
	}
}

func TestOnly(t *testing.T) {
	refused := 0
	h := Only(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(*http.Request) { refused++ })
	for host, want := range map[string]int{"localhost:9737": http.StatusOK, "rebound.example:9737": http.StatusMisdirectedRequest} {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %s: %d, want %d", host, w.Code, want)
		}
	}
	if refused != 1 {
		t.Errorf("refused called %d times, want 1", refused)
	}
}
