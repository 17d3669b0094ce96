package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults.
const (
	DefaultTimeout = 30 * time.Second
	DefaultRetries = 3
	DefaultQueue   = 100
	// MaxRetries bounds Retries: with the doubling wait, 10 retries
	// already span over 17 minutes.
	MaxRetries = 10
	// defaultBackoff is the wait before a webhook's first retry; it
	// doubles for each next one.
	defaultBackoff = time.Second
)

// Hook is one configured hook: a command or a webhook.
type Hook struct {
	// Name names the hook in the log; empty means its command or URL.
	Name string
	// Command is the argv of a command hook, run without a shell.
	Command []string
	// Webhook is the URL of a webhook hook.
	Webhook string
	// Headers are added to the webhook's request.
	Headers map[string]string
	// Body is "json" (default) or "text".
	Body string
	// Events are the kinds the hook receives; nil means DefaultKinds.
	Events []Kind
}

// FieldError is a problem with one field of a Hook, named by its
// configuration key.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Check reports what is wrong with h, as a *FieldError.
func (h Hook) Check() error {
	switch {
	case len(h.Command) == 0 && h.Webhook == "":
		return &FieldError{"command", "set command or webhook"}
	case len(h.Command) > 0 && h.Webhook != "":
		return &FieldError{"webhook", "a hook has a command or a webhook, not both; make two hooks"}
	case len(h.Command) > 0:
		if strings.TrimSpace(h.Command[0]) == "" {
			return &FieldError{"command", "the program to run is empty"}
		}
		if _, err := exec.LookPath(h.Command[0]); err != nil {
			return &FieldError{"command", fmt.Sprintf("%q cannot be run: %v", h.Command[0], errors.Unwrap(err))}
		}
		if len(h.Headers) > 0 || h.Body != "" {
			return &FieldError{"headers", "headers and body are for a webhook, not a command"}
		}
	default:
		u, err := url.Parse(h.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{"webhook", fmt.Sprintf("%q is not an http or https URL", h.Webhook)}
		}
		switch h.Body {
		case "", "json", "text":
		default:
			return &FieldError{"body", fmt.Sprintf("%q: want json or text", h.Body)}
		}
		for k := range h.Headers {
			if k == "" || strings.ContainsAny(k, " :\r\n") {
				return &FieldError{"headers", fmt.Sprintf("%q is not a header name", k)}
			}
		}
	}
	return nil
}

// label names h in the log, without the webhook URL's secrets (a Slack
// or Home Assistant webhook's path is its password).
func (h Hook) label() string {
	if h.Name != "" {
		return h.Name
	}
	if len(h.Command) > 0 {
		return h.Command[0]
	}
	if u, err := url.Parse(h.Webhook); err == nil {
		return u.Scheme + "://" + u.Host
	}
	return "webhook"
}

func (h Hook) wants(k Kind) bool {
	kinds := h.Events
	if kinds == nil {
		kinds = DefaultKinds
	}
	return slices.Contains(kinds, k)
}

// Options configure a Runner.
type Options struct {
	Hooks []Hook
	// Timeout bounds a command's run and each webhook attempt
	// (DefaultTimeout when 0).
	Timeout time.Duration
	// Retries is how often a failed webhook attempt is tried again.
	Retries int
	// Backoff is the wait before the first retry, doubled for each next
	// one (a second when 0).
	Backoff time.Duration
	// Queue is how many events wait per hook (DefaultQueue when 0).
	Queue int
	// Hostname fills the events' Hostname when they have none; empty
	// means os.Hostname.
	Hostname string
	// Logger receives what the hooks did; nil discards it.
	Logger *slog.Logger
	// Client sends the webhooks; nil means a client of its own.
	Client *http.Client
}

// Stats counts what a Runner did, over all its hooks.
type Stats struct {
	Delivered, Failed, Dropped uint64
}

// Runner hands events to the hooks. Fire never blocks; Close stops it.
type Runner struct {
	opts    Options
	log     *slog.Logger
	workers []*worker
	wg      sync.WaitGroup
	// ctx ends when Close gives up waiting: it cancels the deliveries
	// under way (a command is killed) and drops what is still queued.
	ctx    context.Context
	cancel context.CancelFunc

	delivered, failed, dropped atomic.Uint64
}

// worker runs one hook's queue, so a slow hook holds up only itself.
type worker struct {
	hook Hook
	wake chan struct{}

	mu     sync.Mutex
	queue  []Event
	closed bool
}

// New checks the hooks and starts one worker per hook.
func New(opts Options) (*Runner, error) {
	for i, h := range opts.Hooks {
		if err := h.Check(); err != nil {
			return nil, fmt.Errorf("hook %d (%s): %w", i+1, h.label(), err)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Backoff <= 0 {
		opts.Backoff = defaultBackoff
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	// A copy: the redirect policy is the runner's, whoever made the client.
	client := *opts.Client
	client.CheckRedirect = sameOrigin
	opts.Client = &client
	n := &Runner{opts: opts, log: opts.Logger}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, h := range opts.Hooks {
		w := &worker{hook: h, wake: make(chan struct{}, 1)}
		n.workers = append(n.workers, w)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.work(w)
		}()
	}
	return n, nil
}

// Fire queues ev for each hook that wants it and returns at once. When a
// hook's queue is full its oldest event is dropped (and logged): the
// newest say most about now. Time, Version, Hostname and Text are filled
// in when empty.
func (n *Runner) Fire(ev Event) {
	if ev.Version == 0 {
		ev.Version = SchemaVersion
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.Hostname == "" {
		ev.Hostname = n.opts.Hostname
	}
	if ev.Text == "" {
		ev.Text = ev.MakeText()
	}
	for _, w := range n.workers {
		if !w.hook.wants(ev.Event) {
			continue
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			continue
		}
		var lost *Event
		if len(w.queue) >= n.opts.Queue {
			old := w.queue[0]
			lost = &old
			w.queue = slices.Delete(w.queue, 0, 1)
		}
		w.queue = append(w.queue, ev)
		w.mu.Unlock()
		if lost != nil {
			n.dropped.Add(1)
			n.log.Warn("hook queue full; dropped its oldest event", "hook", w.hook.label(), "event", lost.Event, "udid", lost.UDID, "queue", n.opts.Queue)
		}
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Stats returns what the hooks did so far.
func (n *Runner) Stats() Stats {
	return Stats{Delivered: n.delivered.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load()}
}

// Close stops taking events and lets the hooks work through their queues
// until ctx ends; then it kills what still runs and drops what still
// waits. It returns once every worker has stopped.
func (n *Runner) Close(ctx context.Context) {
	for _, w := range n.workers {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel()
		<-done
	}
	n.cancel()
}

// work delivers w's events one after another until the runner closes.
func (n *Runner) work(w *worker) {
	for {
		w.mu.Lock()
		if n.ctx.Err() != nil {
			left := len(w.queue)
			w.queue = nil
			w.mu.Unlock()
			if left > 0 {
				n.dropped.Add(uint64(left))
				n.log.Warn("backupd stopped before these hook events were delivered", "hook", w.hook.label(), "events", left)
			}
			return
		}
		if len(w.queue) == 0 {
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-w.wake:
			case <-n.ctx.Done():
			}
			continue
		}
		ev := w.queue[0]
		w.queue = slices.Delete(w.queue, 0, 1)
		w.mu.Unlock()
		n.deliver(w.hook, ev)
	}
}

func (n *Runner) deliver(h Hook, ev Event) {
	start := time.Now()
	var err error
	if len(h.Command) > 0 {
		err = n.runCommand(n.ctx, h, ev)
	} else {
		err = n.postWebhook(n.ctx, h, ev)
	}
	log := n.log.With("hook", h.label(), "event", ev.Event, "udid", ev.UDID)
	if err != nil {
		n.failed.Add(1)
		log.Warn("hook failed", "err", err, "took", time.Since(start).Round(time.Millisecond))
		return
	}
	n.delivered.Add(1)
	log.Debug("hook done", "took", time.Since(start).Round(time.Millisecond))
}

// encode returns ev's JSON.
func encode(ev Event) []byte {
	b, err := json.Marshal(ev)
	if err != nil {
		// Event holds strings, numbers and times only.
		panic(fmt.Sprintf("hook: encode event: %v", err))
	}
	return b
}

// capped keeps the first max bytes written to it and counts the rest: a
// chatty hook must not fill the log or the memory.
type capped struct {
	max   int
	buf   []byte
	extra int
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - len(c.buf)
	if room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	c.extra += len(p) - min(max(room, 0), len(p))
	return len(p), nil
}

func (c *capped) String() string {
	s := strings.TrimSpace(string(c.buf))
	if c.extra > 0 {
		s += fmt.Sprintf(" ... (%d more bytes)", c.extra)
	}
	return s
}

var _ io.Writer = (*capped)(nil)
