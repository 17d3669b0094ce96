package devicelink

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/backupd/backupd/proto/wire"
)

// Moves is the dictionary of a DLMessageMoveItems (or MoveFiles): each
// source path and the destination it moves to. At the end of a backup
// an iPhone moves every file it sent (Snapshot/xx/h to xx/h) in one
// message: decoded whole, 20,000 files cost 15 MB of allocations and
// 9 MB live. DecodeMessage gives a binary message's moves as a Moves
// read in place, one entry at a time, in the order the device wrote.
type Moves struct {
	p    *wire.Bplist
	dict wire.Ref
	// m holds moves decoded another way (an XML message, a test's map).
	m map[string]any
}

// MovesOf wraps a decoded dictionary; Each goes through it in sorted
// order.
func MovesOf(m map[string]any) Moves { return Moves{m: m} }

// Each calls fn for each move until fn returns an error. An entry that is
// not a pair of strings is a protocol error.
func (mv Moves) Each(fn func(src, dst string) error) error {
	if mv.p == nil {
		for _, src := range slices.Sorted(maps.Keys(mv.m)) {
			dst, ok := mv.m[src].(string)
			if !ok {
				return fmt.Errorf("%w: the destination of %q is %T, not a string", ErrProtocol, src, mv.m[src])
			}
			if err := fn(src, dst); err != nil {
				return err
			}
		}
		return nil
	}
	return mv.p.Dict(mv.dict, func(k, v wire.Ref) error {
		src, err := mv.p.String(k)
		if err != nil {
			return fmt.Errorf("%w: a move's source: %w", ErrProtocol, err)
		}
		dst, err := mv.p.String(v)
		if err != nil {
			return fmt.Errorf("%w: the destination of %q: %w", ErrProtocol, src, err)
		}
		return fn(src, dst)
	})
}

// decodeMoves reads a binary MoveItems or MoveFiles message in place:
// its name, its moves and the scalars and empty containers after them
// (the progress). ok is false for anything else, which DecodeMessage
// then decodes whole.
func decodeMoves(data []byte) (name string, msg []any, ok bool) {
	if !bytes.HasPrefix(data, []byte("bplist00")) {
		return "", nil, false
	}
	p, err := wire.OpenBplist(data)
	if err != nil {
		return "", nil, false
	}
	n, elem, err := p.Array(p.Top())
	if err != nil || n < 2 || n > 8 {
		return "", nil, false
	}
	name, err = p.String(elem(0))
	if err != nil || (name != MsgMoveItems && name != MsgMoveFiles) {
		return "", nil, false
	}
	if err := p.Dict(elem(1), func(wire.Ref, wire.Ref) error { return nil }); err != nil {
		return "", nil, false
	}
	msg = []any{name, Moves{p: p, dict: elem(1)}}
	for i := uint64(2); i < n; i++ {
		v, ok := scalar(p, elem(i))
		if !ok {
			return "", nil, false
		}
		msg = append(msg, v)
	}
	return name, msg, true
}

// scalar reads what follows a message's moves as the plist decoder
// would: a real, a non-negative integer, a string, an empty dictionary.
func scalar(p *wire.Bplist, r wire.Ref) (any, bool) {
	if f, err := p.Real(r); err == nil {
		if i, err := p.Int(r); err == nil {
			if i < 0 {
				return nil, false
			}
			return uint64(i), true
		}
		return f, true
	}
	if s, err := p.String(r); err == nil {
		return s, true
	}
	empty := true
	if err := p.Dict(r, func(wire.Ref, wire.Ref) error { empty = false; return nil }); err == nil && empty {
		return map[string]any{}, true
	}
	return nil, false
}

// MovesArg reads element i of a MoveItems message: the moves DecodeMessage
// read in place, or a dictionary.
func MovesArg(msg []any, i int) (Moves, error) {
	if i < len(msg) {
		if mv, ok := msg[i].(Moves); ok {
			return mv, nil
		}
	}
	m, err := Arg[map[string]any](msg, i)
	return MovesOf(m), err
}
