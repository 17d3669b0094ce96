package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// contentSecurityPolicy allows the page's own script, stylesheet and
// event stream and nothing else: no inline script or style, no other
// origin, no framing, forms posting only here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: under no-referrer a browser sends
	// "Origin: null" with the page's own forms, which checkPost refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// Cookie names.
const (
	csrfCookie    = "backupd_csrf"
	sessionCookie = "backupd_session"
	csrfField     = "csrf"
)

// csrfToken returns the token the page's forms carry: an HMAC of the
// browser's CSRF cookie, set here when it has none. A page on another
// site can neither read the cookie nor compute the token.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(csrfCookie)
	val := ""
	if err == nil && validCookieValue(c.Value) {
		val = c.Value
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		val = hex.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: val, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	return s.sign(val)
}

func validCookieValue(v string) bool {
	_, err := hex.DecodeString(v)
	return err == nil && len(v) == 64
}

func (s *Server) sign(v string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("csrf:" + v))
	return hex.EncodeToString(m.Sum(nil))
}

// checkPost refuses a POST from another origin or without the page's
// CSRF token; false when it has answered.
func (s *Server) checkPost(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !sameOrigin(r) {
		s.opts.Logger.Warn().Str("origin", r.Header.Get("Origin")).Str("path", r.URL.Path).Msg("web: refused a cross-origin POST")
		s.errorPage(w, r, http.StatusForbidden, "Refused", "This request came from another web site, so backupd did not act on it.", "Use the buttons on backupd's own page.")
		return false
	}
	c, err := r.Cookie(csrfCookie)
	got := r.PostFormValue(csrfField)
	if err != nil || !validCookieValue(c.Value) || got == "" ||
		subtle.ConstantTimeCompare([]byte(got), []byte(s.sign(c.Value))) != 1 {
		s.opts.Logger.Warn().Str("path", r.URL.Path).Msg("web: refused a POST without a valid CSRF token")
		s.errorPage(w, r, http.StatusForbidden, "Refused", "This form was not sent by backupd's page (its security token is missing or out of date), so nothing was done.", "Reload the page and press the button again.")
		return false
	}
	return true
}

// sameOrigin: the browser's Origin names the host the request was sent
// to (or, behind a proxy, the X-Forwarded-Host it names). Browsers send
// Origin with every POST; a request without one is refused.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	fh := r.Header.Get("X-Forwarded-Host")
	return fh != "" && strings.EqualFold(u.Host, fh)
}

// sessionValue is what the session cookie holds once the token was
// given: derived from the token, so it survives a restart, and not the
// token itself.
func sessionValue(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("backupd web session"))
	return hex.EncodeToString(m.Sum(nil))
}

// authorized: the request carries the token (a proxy's Authorization
// header) or the session cookie the login form set.
func (s *Server) authorized(r *http.Request) bool {
	tok := s.opts.Token
	if h := r.Header.Get("Authorization"); h != "" {
		return subtle.ConstantTimeCompare([]byte(h), []byte("Bearer "+tok)) == 1
	}
	c, err := r.Cookie(sessionCookie)
	return err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(sessionValue(tok))) == 1
}

// publicPath: what a browser without the token may have: the stylesheet
// for the login page, and the login itself.
func publicPath(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/static/") || (r.Method == http.MethodPost && r.URL.Path == "/login")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	got := r.PostFormValue("token")
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) != 1 {
		s.opts.Logger.Warn().Str("remote", r.RemoteAddr).Msg("web: wrong token")
		s.loginPage(w, r, http.StatusUnauthorized, "That is not the token in the configuration (web.token).")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sessionValue(s.opts.Token), Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
