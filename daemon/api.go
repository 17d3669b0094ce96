package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/proto/devicestring"
)

// backend is what the API handlers ask; *Daemon is the one in service,
// tests give their own.
type backend interface {
	health() api.Health
	devices() ([]api.Device, error)
	device(udid string) (api.Device, error)
	history(udid string, q api.RunsQuery) (api.RunsPage, error)
	runs(q api.RunsQuery) (api.RunsPage, error)
	run(id uint64) (api.Run, error)
	backupNow(ctx context.Context, udid string, full bool) error
	subscribe() (<-chan api.Event, func())
	verify(ctx context.Context, udid string, req api.VerifyRequest) ([]api.VerifyResult, error)
	setEncryption(ctx context.Context, udid string, enable bool, password string) (api.EncryptionResponse, error)
	restore(ctx context.Context, udid string, req api.RestoreRequest) (api.RestoreResponse, error)
	versions(ctx context.Context, udid, from string) (api.VersionsResponse, error)
}

func (d *Daemon) subscribe() (<-chan api.Event, func()) { return d.bus.subscribe() }

func (d *Daemon) handler() http.Handler { return withVersion(d.version, newAPIHandler(d, d.log)) }

// withVersion puts the daemon's version in every answer's
// api.VersionHeader.
func withVersion(version string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if version != "" {
			w.Header().Set(api.VersionHeader, version)
		}
		next.ServeHTTP(w, r)
	})
}

// newAPIHandler serves the API (see package api for the paths) from b.
func newAPIHandler(b backend, log zerolog.Logger) http.Handler {
	h := &apiHandler{b: b, log: log, streams: make(chan struct{}, maxStreams)}
	mux := http.NewServeMux()
	p := api.Prefix
	mux.HandleFunc("GET "+p+"/health", h.health)
	mux.HandleFunc("GET "+p+"/devices", h.devices)
	mux.HandleFunc("GET "+p+"/devices/{udid}", h.device)
	mux.HandleFunc("GET "+p+"/devices/{udid}/runs", h.deviceRuns)
	mux.HandleFunc("POST "+p+"/devices/{udid}/backup", h.backupNow)
	mux.HandleFunc("POST "+p+"/devices/{udid}/verify", h.verify)
	mux.HandleFunc("POST "+p+"/verify", h.verify)
	mux.HandleFunc("POST "+p+"/devices/{udid}/encryption", h.encryption)
	mux.HandleFunc("POST "+p+"/devices/{udid}/restore", h.restore)
	mux.HandleFunc("GET "+p+"/devices/{udid}/versions", h.versions)
	mux.HandleFunc("GET "+p+"/runs", h.runs)
	mux.HandleFunc("GET "+p+"/runs/{id}", h.run)
	mux.HandleFunc("GET "+p+"/events", h.events)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, &api.Error{Code: api.ErrNotFound, Message: fmt.Sprintf("no such API path %s %s (this daemon serves %s/...)", r.Method, r.URL.Path, api.Prefix)})
	})
	return h.requireJSON(mux)
}

// requireJSON refuses a POST that is not application/json. A web page can
// send a form or text/plain POST to any address without asking; a JSON
// one needs the server's consent (a CORS preflight), which this API never
// gives.
func (h *apiHandler) requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				w.Header().Set("Connection", "close")
				h.reply(w, r, http.StatusUnsupportedMediaType, &api.Error{Code: api.ErrBadRequest, Message: "a POST to the API must be application/json"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

type apiHandler struct {
	b   backend
	log zerolog.Logger
	// streams holds a slot per open event stream (at most maxStreams).
	streams chan struct{}
}

// maxStreams bounds the event streams open at once: each holds a
// descriptor and a buffer of events (2,000 streams once took 2,000
// descriptors and 50 MB). A person has a terminal or two and the web
// page open, not hundreds.
const maxStreams = 32

func (h *apiHandler) health(w http.ResponseWriter, r *http.Request) {
	h.reply(w, r, http.StatusOK, h.b.health())
}

func (h *apiHandler) devices(w http.ResponseWriter, r *http.Request) {
	devs, err := h.b.devices()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, devs)
}

func (h *apiHandler) device(w http.ResponseWriter, r *http.Request) {
	dev, err := h.b.device(udidOf(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, dev)
}

func (h *apiHandler) deviceRuns(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseRunsQuery(r.URL.Query())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, err := h.b.history(udidOf(r), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, page)
}

func (h *apiHandler) runs(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseRunsQuery(r.URL.Query())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, err := h.b.runs(q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, page)
}

func (h *apiHandler) run(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		h.fail(w, r, &api.Error{Code: api.ErrBadRequest, Message: fmt.Sprintf("%q is not a run id", r.PathValue("id"))})
		return
	}
	run, err := h.b.run(id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, run)
}

// udidOf is the request path's UDID in the phone's own spelling, so that
// 00008030-001a2b3c4d5e802e names the phone 00008030-001A2B3C4D5E802E.
func udidOf(r *http.Request) string { return devicestring.UDID(r.PathValue("udid")) }

// maxRequestBody bounds a request body; the largest is a BackupRequest.
const maxRequestBody = 4 << 10

// readBody decodes an optional JSON request body into v; false when it
// answered the request with an error.
func (h *apiHandler) readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		h.fail(w, r, &api.Error{Code: api.ErrBadRequest, Message: "read request: " + err.Error()})
		return false
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, v); err != nil {
			h.fail(w, r, &api.Error{Code: api.ErrBadRequest, Message: "request body: " + err.Error()})
			return false
		}
	}
	return true
}

func (h *apiHandler) backupNow(w http.ResponseWriter, r *http.Request) {
	var req api.BackupRequest
	if !h.readBody(w, r, &req) {
		return
	}
	udid := udidOf(r)
	if err := h.b.backupNow(r.Context(), udid, req.Full); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info().Str("udid", udid).Bool("full", req.Full).Msg("backup requested through the API")
	h.reply(w, r, http.StatusAccepted, api.BackupResponse{UDID: udid, Message: "backup started; follow it on " + api.Prefix + "/events"})
}

// verify re-verifies one device's backups ({udid} in the path) or every
// device's.
func (h *apiHandler) verify(w http.ResponseWriter, r *http.Request) {
	var req api.VerifyRequest
	if !h.readBody(w, r, &req) {
		return
	}
	res, err := h.b.verify(r.Context(), udidOf(r), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, api.VerifyResponse{Backups: res})
}

// encryption turns a device's backup encryption on or off. The request
// carries a password: nothing here logs the body.
func (h *apiHandler) encryption(w http.ResponseWriter, r *http.Request) {
	var req api.EncryptionRequest
	if !h.readBody(w, r, &req) {
		return
	}
	resp, err := h.b.setEncryption(r.Context(), udidOf(r), req.Enable, req.Password)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, resp)
}

// restore starts a restore. The request carries the backup's password:
// nothing here logs the body.
func (h *apiHandler) restore(w http.ResponseWriter, r *http.Request) {
	var req api.RestoreRequest
	if !h.readBody(w, r, &req) {
		return
	}
	resp, err := h.b.restore(r.Context(), udidOf(r), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusAccepted, resp)
}

// versions lists a phone's kept backups; ?from= keeps the one a
// restore's From names.
func (h *apiHandler) versions(w http.ResponseWriter, r *http.Request) {
	resp, err := h.b.versions(r.Context(), udidOf(r), r.URL.Query().Get("from"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, resp)
}

// events streams the live events as server-sent events until the client
// goes away or the daemon stops. ?udid= keeps one device's events.
func (h *apiHandler) events(w http.ResponseWriter, r *http.Request) {
	select {
	case h.streams <- struct{}{}:
		defer func() { <-h.streams }()
	default:
		w.Header().Set("Connection", "close")
		h.fail(w, r, &api.Error{Code: api.ErrBusy, Message: fmt.Sprintf("%d event streams are open already; close one", maxStreams)})
		return
	}
	rc := http.NewResponseController(w)
	udid := devicestring.UDID(r.URL.Query().Get("udid"))
	ch, cancel := h.b.subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	// A comment first, so the client knows it is subscribed before any
	// event happens.
	if _, err := io.WriteString(w, ": backupd events\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if udid != "" && ev.UDID != udid {
				continue
			}
			data, err := json.Marshal(ev)
			if err != nil {
				h.log.Error().Err(err).Msg("encode event")
				continue
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

func (h *apiHandler) reply(w http.ResponseWriter, r *http.Request, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		h.log.Error().Err(err).Str("path", r.URL.Path).Msg("encode API reply")
		status, data = http.StatusInternalServerError, []byte(`{"code":"internal","error":"encoding the reply failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// fail answers with err's API code and status; an error without one is
// internal and logged, and its text still goes to the client: the API is
// local and its user is the owner.
func (h *apiHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		h.log.Error().Err(err).Str("path", r.URL.Path).Msg("API request failed")
		ae = &api.Error{Code: api.ErrInternal, Message: err.Error()}
	}
	h.reply(w, r, statusOf(ae.Code), ae)
}

func statusOf(code string) int {
	switch code {
	case api.ErrBadRequest:
		return http.StatusBadRequest
	case api.ErrNotFound:
		return http.StatusNotFound
	case api.ErrNotConnected, api.ErrBusy:
		return http.StatusConflict
	case api.ErrRefused:
		return http.StatusForbidden
	case api.ErrUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// requireToken guards the optional TCP listener: unlike the socket, whose
// mode limits it to the owner and the group, a loopback port is open to
// every local user.
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			// Closed after the answer: a client without the token has no
			// business keeping a descriptor.
			w.Header().Set("Connection", "close")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"code":"unauthorized","error":"this API port needs the token from the configuration (api.token)"}`+"\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}
