// Package client is the typed Go client of backupd's local API (package
// api), over the daemon's unix socket. The CLI uses it; when it reports
// ErrNoDaemon, the CLI reads the history database directly instead.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/backupd/backupd/daemon/api"
)

// ErrNoDaemon: nothing answers on the socket (no socket, or a stale one
// left by a daemon that died).
var ErrNoDaemon = errors.New("backupd is not running")

// Error is an error the daemon answered with.
type Error struct {
	// Status is the HTTP status, Code the API's error code (api.ErrBusy,
	// ...), Message its words.
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("backupd: %s", e.Message)
}

// Client talks to one daemon. It is safe for concurrent use.
type Client struct {
	socket string
	http   *http.Client

	// version is the client's own; mismatch hears, once, of a daemon
	// that answers with another (WithVersion).
	version  string
	mismatch func(daemonVersion string)
	checked  sync.Once
}

// Option sets up a Client.
type Option func(*Client)

// WithVersion has the client compare the daemon's version (in every
// answer's api.VersionHeader) with its own, version, and call mismatch
// once, with the daemon's, when they differ: after an upgrade the old
// daemon may still run. A daemon that does not say its version is not
// compared.
func WithVersion(version string, mismatch func(daemonVersion string)) Option {
	return func(c *Client) { c.version, c.mismatch = version, mismatch }
}

// DefaultTimeout bounds each request but the event stream.
const DefaultTimeout = 30 * time.Second

// New returns a client for the daemon listening on socket
// (<state_dir>/backupd.sock).
func New(socket string, opts ...Option) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	c := &Client{socket: socket, http: &http.Client{Transport: tr}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// checkVersion compares the version a response carries with the
// client's.
func (c *Client) checkVersion(resp *http.Response) {
	theirs := resp.Header.Get(api.VersionHeader)
	if c.mismatch == nil || theirs == "" || theirs == c.version {
		return
	}
	c.checked.Do(func() { c.mismatch(theirs) })
}

// Socket returns the socket the client talks to.
func (c *Client) Socket() string { return c.socket }

// Close drops the idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// Health asks whether the daemon is up.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	return h, c.get(ctx, "/health", nil, &h)
}

// Devices lists the devices the daemon knows or sees.
func (c *Client) Devices(ctx context.Context) ([]api.Device, error) {
	var d []api.Device
	return d, c.get(ctx, "/devices", nil, &d)
}

// Device returns one device.
func (c *Client) Device(ctx context.Context, udid string) (api.Device, error) {
	var d api.Device
	return d, c.get(ctx, "/devices/"+url.PathEscape(udid), nil, &d)
}

// Runs returns a page of runs matching q, newest first.
func (c *Client) Runs(ctx context.Context, q api.RunsQuery) (api.RunsPage, error) {
	var p api.RunsPage
	return p, c.get(ctx, "/runs", q.Values(), &p)
}

// Run returns one run.
func (c *Client) Run(ctx context.Context, id uint64) (api.Run, error) {
	var r api.Run
	return r, c.get(ctx, "/runs/"+strconv.FormatUint(id, 10), nil, &r)
}

// History returns a page of one device's runs, newest first; q's UDID is
// ignored.
func (c *Client) History(ctx context.Context, udid string, q api.RunsQuery) (api.RunsPage, error) {
	q.UDID = ""
	var p api.RunsPage
	return p, c.get(ctx, "/devices/"+url.PathEscape(udid)+"/runs", q.Values(), &p)
}

// BackupNow asks for a backup of a connected device now. The daemon
// answers once the backup is under way, not when it ends: follow it with
// Events or Device.
func (c *Client) BackupNow(ctx context.Context, udid string, req api.BackupRequest) (api.BackupResponse, error) {
	var resp api.BackupResponse
	body, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	return resp, c.do(ctx, http.MethodPost, "/devices/"+url.PathEscape(udid)+"/backup", nil, body, &resp)
}

// Verify re-verifies the backups of one device on disk (every device's
// when udid is empty), the versions too when req.Versions. A backup that
// does not verify is a result, not an error. It can take minutes for a
// large backup: give ctx a deadline to bound it (DefaultTimeout
// otherwise).
func (c *Client) Verify(ctx context.Context, udid string, req api.VerifyRequest) (api.VerifyResponse, error) {
	var resp api.VerifyResponse
	body, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	path := "/verify"
	if udid != "" {
		path = "/devices/" + url.PathEscape(udid) + "/verify"
	}
	return resp, c.do(ctx, http.MethodPost, path, nil, body, &resp)
}

// SetEncryption turns a device's backup encryption on or off. The phone
// may wait for its passcode first, so give ctx a deadline of minutes. A
// refusal by the phone (a wrong password) comes back in the response's
// Cause, not as an error.
func (c *Client) SetEncryption(ctx context.Context, udid string, req api.EncryptionRequest) (api.EncryptionResponse, error) {
	var resp api.EncryptionResponse
	body, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	return resp, c.do(ctx, http.MethodPost, "/devices/"+url.PathEscape(udid)+"/encryption", nil, body, &resp)
}

// Restore asks for a kept backup to be put back on a connected iPhone.
// The daemon answers once the restore is accepted, not when it ends:
// follow it with Events (a run of kind restore ends it). A safety backup
// comes first unless req says otherwise.
func (c *Client) Restore(ctx context.Context, udid string, req api.RestoreRequest) (api.RestoreResponse, error) {
	var resp api.RestoreResponse
	body, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	return resp, c.do(ctx, http.MethodPost, "/devices/"+url.PathEscape(udid)+"/restore", nil, body, &resp)
}

// Versions lists the kept backups of a phone, newest first, verified;
// with from, only the one a restore from it would restore. It reads
// every backup's Manifest.db: give ctx a deadline of minutes for large
// backups.
func (c *Client) Versions(ctx context.Context, udid, from string) (api.VersionsResponse, error) {
	var resp api.VersionsResponse
	var q url.Values
	if from != "" {
		q = url.Values{"from": {from}}
	}
	return resp, c.get(ctx, "/devices/"+url.PathEscape(udid)+"/versions", q, &resp)
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, out)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	resp, err := c.send(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("backupd %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("backupd %s %s: decode reply: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	u := "http://backupd" + api.Prefix + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil || method == http.MethodPost {
		// The API refuses a POST of any other type, with a body or not.
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if noDaemon(err) {
			return nil, fmt.Errorf("%w (no answer on %s): %w", ErrNoDaemon, c.socket, err)
		}
		return nil, fmt.Errorf("backupd %s %s: %w", method, path, err)
	}
	c.checkVersion(resp)
	return resp, nil
}

// noDaemon tells a socket nobody listens on from other failures.
func noDaemon(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

func decodeError(status int, data []byte) error {
	var ae api.Error
	if json.Unmarshal(data, &ae) != nil || ae.Message == "" {
		ae = api.Error{Code: api.ErrInternal, Message: fmt.Sprintf("HTTP %d: %s", status, strings.TrimSpace(string(data)))}
	}
	return &Error{Status: status, Code: ae.Code, Message: ae.Message}
}

// EventStream is the live stream of events. Next blocks for the next
// one; Close ends the stream.
type EventStream struct {
	body   io.ReadCloser
	r      *bufio.Reader
	cancel context.CancelFunc
}

// Events subscribes to the live stream; udid, when not empty, keeps one
// device's events. The stream lasts until ctx ends, Close is called or
// the daemon ends it (it does when the client reads too slowly or the
// daemon stops): then Next returns io.EOF.
func (c *Client) Events(ctx context.Context, udid string) (*EventStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	q := url.Values{}
	if udid != "" {
		q.Set("udid", udid)
	}
	resp, err := c.send(ctx, http.MethodGet, "/events", q, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		cancel()
		return nil, decodeError(resp.StatusCode, data)
	}
	return &EventStream{body: resp.Body, r: bufio.NewReader(resp.Body), cancel: cancel}, nil
}

// maxEventLine bounds one line of the stream.
const maxEventLine = 1 << 20

// Next returns the next event.
func (s *EventStream) Next() (api.Event, error) {
	var data []byte
	for {
		line, err := s.readLine()
		if err != nil {
			return api.Event{}, err
		}
		switch {
		case line == "":
			if data == nil {
				continue // the end of a comment or an empty event
			}
			var ev api.Event
			if err := json.Unmarshal(data, &ev); err != nil {
				return api.Event{}, fmt.Errorf("backupd events: decode: %w", err)
			}
			return ev, nil
		case strings.HasPrefix(line, ":"):
			// A comment.
		case strings.HasPrefix(line, "data:"):
			d := strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, d...)
		}
		// id: and event: repeat what the JSON says.
	}
}

func (s *EventStream) readLine() (string, error) {
	var b []byte
	for {
		frag, isPrefix, err := s.r.ReadLine()
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.Canceled) {
				err = io.EOF
			}
			return "", err
		}
		b = append(b, frag...)
		if len(b) > maxEventLine {
			return "", errors.New("backupd events: line too long")
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// Close ends the stream.
func (s *EventStream) Close() error {
	s.cancel()
	return s.body.Close()
}
