package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/proto/devicestring"
)

// FromClient adapts the API client, the CLI's, to API.
func FromClient(c *client.Client) API { return clientAPI{c} }

type clientAPI struct{ *client.Client }

func (c clientAPI) Events(ctx context.Context, udid string) (EventStream, error) {
	return c.Client.Events(ctx, udid)
}

// keepAlive is how often an idle event stream gets a comment, so that a
// proxy in between does not close it and the browser notices a daemon
// gone without a word.
const keepAlive = 20 * time.Second

// events relays the API's event stream to the page's script, as
// server-sent events. ?udid= keeps one phone's.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	udid := devicestring.UDID(r.URL.Query().Get("udid"))
	stream, err := s.opts.API.Events(r.Context(), udid)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	defer stream.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// retry: how long the browser waits before it reconnects.
	if _, err := io.WriteString(w, "retry: 2000\n: backupd events\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	evs := make(chan api.Event)
	done := make(chan error, 1)
	go func() {
		for {
			ev, err := stream.Next()
			if err != nil {
				done <- err
				return
			}
			select {
			case evs <- ev:
			case <-r.Context().Done():
				done <- r.Context().Err()
				return
			}
		}
	}()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-done:
			// The daemon ended the stream (it is stopping, or the page
			// read too slowly): the browser reconnects and refreshes.
			return
		case <-tick.C:
			_, err = io.WriteString(w, ": keep-alive\n\n")
		case ev := <-evs:
			var data []byte
			if data, err = json.Marshal(ev); err == nil {
				_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data)
			}
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}
