package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// responseLimit bounds what is read of a webhook's response.
const responseLimit = 1 << 10

// statusError is a response other than 2xx.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("HTTP %d", e.code)
	}
	return fmt.Sprintf("HTTP %d: %s", e.code, e.body)
}

// retryable: a network error, a server error, a timeout or "too many
// requests" may pass on a second try; another 4xx will not.
func retryable(err error) bool {
	se, ok := err.(*statusError)
	if !ok {
		return true
	}
	return se.code >= 500 || se.code == http.StatusRequestTimeout || se.code == http.StatusTooManyRequests
}

// maxRedirects bounds the redirects a webhook may answer with.
const maxRedirects = 3

// sameOrigin lets a webhook redirect only to its own scheme, host and
// port: the request carries the event and the hook's headers (API keys,
// tokens), and a redirect elsewhere, or from https to http, would hand
// them to someone the configuration never named (issue #16). A refused
// redirect ends the attempt with the 3xx answer, a failure.
func sameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return http.ErrUseLastResponse
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// postWebhook POSTs the event, trying again after a retryable failure
// up to Retries times with a doubling wait.
func (n *Runner) postWebhook(ctx context.Context, h Hook, ev Event) error {
	body, ctype := encode(ev), "application/json"
	if h.Body == "text" {
		body, ctype = []byte(ev.Text), "text/plain; charset=utf-8"
	}
	wait := n.opts.Backoff
	var err error
	for attempt := 0; ; attempt++ {
		err = n.post(ctx, h, body, ctype)
		if err == nil {
			return nil
		}
		if attempt >= n.opts.Retries || !retryable(err) {
			break
		}
		n.log.Debug("webhook failed; trying again", "hook", h.label(), "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (then backupd stopped)", err)
		}
		wait *= 2
	}
	if retryable(err) && n.opts.Retries > 0 {
		return fmt.Errorf("%w (tried %d times)", err, n.opts.Retries+1)
	}
	return err
}

func (n *Runner) post(parent context.Context, h Hook, body []byte, ctype string) error {
	ctx, cancel := context.WithTimeout(parent, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.Webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "backupd")
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		// The URL may carry a secret (Slack's, Home Assistant's); the
		// error names only what went wrong.
		switch {
		case parent.Err() != nil:
			return errors.New("cancelled: backupd is stopping")
		case ctx.Err() != nil:
			return fmt.Errorf("no answer within %v", n.opts.Timeout)
		}
		return fmt.Errorf("post: %w", unwrapURL(err))
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, responseLimit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(text))}
	}
	return nil
}

// unwrapURL drops *url.Error's "Post "URL":" prefix.
func unwrapURL(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok {
		if inner := u.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
