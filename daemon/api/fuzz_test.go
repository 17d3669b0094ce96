package api

import (
	"net/url"
	"reflect"
	"testing"
	"time"
)

// FuzzParseRunsQuery: any query string a client sends is a RunsQuery or a
// bad_request error, never a panic; and a query that parses survives
// Values and a second parse unchanged, so the client and the daemon read
// a query the same way.
func FuzzParseRunsQuery(f *testing.F) {
	f.Add("udid=00008030-001A2D3E0C38802E&outcome=failed,skipped&cause=disconnected&limit=5")
	f.Add("since=2026-11-24T10:00:00Z&until=2026-11-25&cursor=AAAA")
	f.Add("limit=-1")
	f.Add("outcome=great")
	f.Add("since=yesterday")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseRunsQuery(v)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Code != ErrBadRequest {
				t.Fatalf("error %v (%T), want a bad_request *Error", err, err)
			}
			return
		}
		again, err := ParseRunsQuery(q.Values())
		if err != nil {
			t.Fatalf("%+v: its own Values do not parse: %v", q, err)
		}
		if !again.Since.Equal(q.Since) || !again.Until.Equal(q.Until) {
			t.Fatalf("times changed: %+v became %+v", q, again)
		}
		// Equal times may differ in location; compared above.
		again.Since, again.Until, q.Since, q.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(normal(again), normal(q)) {
			t.Fatalf("%+v became %+v", q, again)
		}
	})
}

// normal makes empty and nil lists alike.
func normal(q RunsQuery) RunsQuery {
	if len(q.Outcomes) == 0 {
		q.Outcomes = nil
	}
	if len(q.Causes) == 0 {
		q.Causes = nil
	}
	return q
}
