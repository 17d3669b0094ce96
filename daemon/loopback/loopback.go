// Package loopback keeps the daemon's HTTP servers (the TCP API,
// /metrics, the web page) to requests meant for this computer.
//
// They listen on a loopback address only, but a web page can still reach
// them: with DNS rebinding its own name resolves to 127.0.0.1, the
// browser treats the answers as the page's own, and the page reads phone
// names and UDIDs. The browser then sends the page's name as Host; a
// server that answers only to loopback names refuses it.
package loopback

import (
	"net"
	"net/http"
	"strings"
)

// Host tells whether a Host header names this computer from itself:
// localhost (or a name under .localhost) or a loopback address, with or
// without a port.
func Host(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Misdirected is the answer to a request for another host name.
const Misdirected = "this server answers only to a loopback name (localhost, 127.0.0.1, [::1]); " +
	"reach it through an SSH tunnel or a proxy that sends Host: localhost\n"

// Only serves next the requests whose Host is a loopback name and answers
// the others 421 Misdirected Request, calling refused (when not nil) for
// each so it can be logged.
func Only(next http.Handler, refused func(*http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Host(r.Host) {
			if refused != nil {
				refused(r)
			}
			w.Header().Set("Connection", "close")
			http.Error(w, Misdirected, http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}
