package wire

import (
	"bytes"
	"fmt"
)

// Limits on the shape of a plist we agree to decode. The plist library
// recurses once per nesting level and materialises every reference to a
// shared binary-plist object separately, so a small hostile plist could
// otherwise exhaust the stack (a fatal error, not a panic) or memory.
// Real DeviceLink messages nest four or five levels deep.
const (
	maxPlistDepth = 64
	// minNodeBudget and nodesPerByte bound the number of values a plist
	// expands to: a legitimate binary plist deduplicates only equal values,
	// so it never expands far beyond its size.
	minNodeBudget = 1 << 16
	nodesPerByte  = 8
	maxNodeBudget = 1 << 24
)

// checkPlist rejects inputs the plist decoder must not see: formats other
// than binary and XML, and documents too deep or expanding too far.
func checkPlist(data []byte) error {
	if bytes.HasPrefix(data, []byte("bplist")) {
		return checkBinaryPlist(data)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) == 0 || trimmed[0] != '<' {
		return fmt.Errorf("%w: neither a binary nor an XML plist", ErrMalformed)
	}
	return checkXMLDepth(trimmed)
}

// checkXMLDepth approximates the nesting of <array> and <dict> elements.
// Markup never appears unescaped inside XML text, so counting tags is
// enough; comments or CDATA holding tags can only make it stricter.
func checkXMLDepth(data []byte) error {
	depth := 0
	for i := 0; i < len(data); i++ {
		if data[i] != '<' {
			continue
		}
		rest := data[i+1:]
		closing := len(rest) > 0 && rest[0] == '/'
		if closing {
			rest = rest[1:]
		}
		if !bytes.HasPrefix(rest, []byte("array")) && !bytes.HasPrefix(rest, []byte("dict")) {
			continue
		}
		if closing {
			depth--
			continue
		}
		// Look for the tag's end nearby only: a scan to the end of the
		// input for every tag would be quadratic on hostile input. A tag
		// whose end is not found counts as opening, the strict choice.
		window := rest[:min(len(rest), 64)]
		end := bytes.IndexByte(window, '>')
		if end > 0 && window[end-1] == '/' {
			continue // <array/> opens nothing
		}
		depth++
		if depth > maxPlistDepth {
			return fmt.Errorf("%w: XML plist nested deeper than %d", ErrMalformed, maxPlistDepth)
		}
	}
	return nil
}

// checkBinaryPlist validates the trailer and walks the object graph from
// the top object, computing each container's depth and expanded size
// without recursion.
func checkBinaryPlist(data []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: binary plist: "+format, append([]any{ErrMalformed}, args...)...)
	}
	bp, err := OpenBplist(data)
	if err != nil {
		return err
	}
	refSize, numObjects, top := bp.refSize, bp.n, bp.top
	// children returns where the references of a container start and how
	// many there are; n == 0 for non-containers.
	children := func(obj uint64) (start, n uint64, err error) {
		typ, count, body, err := bp.header(Ref(obj))
		if err != nil {
			return 0, 0, err
		}
		if typ != bpArr && typ != bpSetT && typ != bpDictT {
			return 0, 0, nil
		}
		if typ == bpDictT {
			if count > (1<<62)/refSize {
				return 0, 0, bad("dictionary of %d entries", count)
			}
			count *= 2
		}
		if _, err := bp.refs(body, count); err != nil {
			return 0, 0, err
		}
		return body, count, nil
	}

	budget := uint64(len(data)) * nodesPerByte
	budget = max(budget, minNodeBudget)
	budget = min(budget, maxNodeBudget)

	// Per object: 0 = unvisited, 1 = on the stack, 2 = done.
	state := make([]uint8, numObjects)
	height := make([]uint8, numObjects)
	size := make([]uint32, numObjects) // at most maxNodeBudget

	type frame struct {
		obj, start, n, next uint64
	}
	stack := []frame{}
	push := func(obj uint64) error {
		if len(stack) >= maxPlistDepth {
			return bad("nested deeper than %d", maxPlistDepth)
		}
		start, n, err := children(obj)
		if err != nil {
			return err
		}
		state[obj] = 1
		size[obj] = 1
		stack = append(stack, frame{obj: obj, start: start, n: n})
		return nil
	}
	if err := push(top); err != nil {
		return err
	}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.next == f.n {
			state[f.obj] = 2
			done := f.obj
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				p := stack[len(stack)-1].obj
				height[p] = max(height[p], height[done]+1)
				size[p] += size[done]
				if uint64(size[p]) > budget {
					return bad("expands to more than %d values", budget)
				}
			}
			continue
		}
		child := readUint(data[f.start+f.next*refSize:], refSize)
		f.next++
		if child >= numObjects {
			return bad("reference to object %d of %d", child, numObjects)
		}
		switch state[child] {
		case 1:
			return bad("object %d contains itself", child)
		case 2:
			p := f.obj
			if int(height[child])+len(stack) > maxPlistDepth {
				return bad("nested deeper than %d", maxPlistDepth)
			}
			height[p] = max(height[p], height[child]+1)
			size[p] += size[child]
			if uint64(size[p]) > budget {
				return bad("expands to more than %d values", budget)
			}
		default:
			if err := push(child); err != nil {
				return err
			}
		}
	}
	return nil
}

func validIntSize(n uint64) bool { return n == 1 || n == 2 || n == 4 || n == 8 }

// readUint reads a big-endian unsigned integer of n (1, 2, 4 or 8) bytes.
func readUint(b []byte, n uint64) uint64 {
	var v uint64
	for i := uint64(0); i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v
}
