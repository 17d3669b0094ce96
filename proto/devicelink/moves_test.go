package devicelink

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"testing"

	"github.com/backupd/backupd/proto/wire"
)

// pairs collects what Moves.Each yields, the last of repeated sources
// winning as in a decoded dictionary.
func pairs(mv Moves) (map[string]any, error) {
	got := map[string]any{}
	err := mv.Each(func(src, dst string) error { got[src] = dst; return nil })
	return got, err
}

func TestDecodeMovesInPlace(t *testing.T) {
	many := map[string]any{}
	for i := range 3000 {
		h := fmt.Sprintf("%040x", i*7919)
		many["U/Snapshot/"+h[:2]+"/"+h] = "U/" + h[:2] + "/" + h
	}
	cases := []struct {
		name string
		msg  []any
	}{
		{"as an iPhone sends it", []any{MsgMoveItems, many, map[string]any{}, 99.5}},
		{"MoveFiles", []any{MsgMoveFiles, map[string]any{"a": "b"}, map[string]any{}, 10.0}},
		{"non-ASCII paths", []any{MsgMoveItems, map[string]any{"U/Snapshot/é": "U/日本"}, map[string]any{}, 1.0}},
		{"integer progress", []any{MsgMoveItems, map[string]any{"a": "b"}, uint64(3)}},
		{"no moves", []any{MsgMoveItems, map[string]any{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := mustEncode(t, c.msg, wire.Binary)
			name, msg, err := DecodeMessage(data)
			if err != nil || name != c.msg[0] {
				t.Fatalf("DecodeMessage = %q, %v", name, err)
			}
			mv, ok := msg[1].(Moves)
			if !ok || mv.p == nil {
				t.Fatalf("element 1 is %T, not moves read in place", msg[1])
			}
			got, err := pairs(mv)
			if err != nil || !maps.Equal(got, c.msg[1].(map[string]any)) {
				t.Fatalf("moves = %d entries, %v; want %d", len(got), err, len(c.msg[1].(map[string]any)))
			}
			var whole []any
			if err := wire.Decode(data, &whole); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(msg[2:], whole[2:]) {
				t.Fatalf("after the moves: %#v, the decoder reads %#v", msg[2:], whole[2:])
			}
		})
	}
}

func TestMovesNotStrings(t *testing.T) {
	for name, m := range map[string]map[string]any{
		"destination an integer": {"a": 1},
		"destination a dict":     {"a": map[string]any{}},
	} {
		t.Run(name, func(t *testing.T) {
			_, msg, err := DecodeMessage(mustEncode(t, []any{MsgMoveItems, m, map[string]any{}, 1.0}, wire.Binary))
			if err != nil {
				t.Fatal(err)
			}
			mv, _ := msg[1].(Moves)
			if _, err := pairs(mv); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Each = %v, want ErrProtocol", err)
			}
			if _, err := pairs(MovesOf(m)); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Each of a map = %v, want ErrProtocol", err)
			}
		})
	}
}

// FuzzMoves checks moves read in place against the whole decoder: never
// a panic, errors are protocol errors, and a message both read reads to
// the same moves.
func FuzzMoves(f *testing.F) {
	f.Add(mustEncode(f, []any{MsgMoveItems, map[string]any{"U/Snapshot/a": "U/a", "U/Snapshot/b": "U/b"}, map[string]any{}, 99.0}, wire.Binary))
	f.Add(mustEncode(f, []any{MsgMoveFiles, map[string]any{"é": "日本"}, uint64(2)}, wire.Binary))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, msg, ok := decodeMoves(data)
		if !ok {
			return
		}
		got, err := pairs(msg[1].(Moves))
		if err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("error %v does not wrap ErrProtocol", err)
		}
		var whole []any
		if wire.Decode(data, &whole) != nil || len(whole) < 2 {
			return
		}
		m, isMap := whole[1].(map[string]any)
		if !isMap {
			t.Fatalf("read in place as moves, decoded as %T", whole[1])
		}
		mv := msg[1].(Moves)
		entries := 0
		mv.p.Dict(mv.dict, func(wire.Ref, wire.Ref) error { entries++; return nil })
		if entries != len(m) {
			// A repeated source: the decoder keeps the last entry only,
			// Each checks them all.
			return
		}
		want, werr := pairs(MovesOf(m))
		if (err == nil) != (werr == nil) || (err == nil && !maps.Equal(got, want)) {
			t.Fatalf("in place %v (%v), decoded %v (%v)", got, err, want, werr)
		}
	})
}
