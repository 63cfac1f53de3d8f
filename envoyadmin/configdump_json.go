package envoyadmin

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
)

// A config dump of a large mesh is several megabytes, and decoding all of it with protojson is
// what makes istioctl slow. The parser therefore walks the dump's structure with the small
// scanner below, which only finds where values start and end, and hands protojson just the
// parts it needs (see dumpPruner). The scanner checks brackets, strings and commas, not the full
// JSON grammar: whatever it hands on, protojson validates.

// dumpSyntaxError is a structural error in the dump's JSON.
type dumpSyntaxError struct {
	Offset int
	Msg    string
}

func (e *dumpSyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

func dumpSyntax(off int, msg string) error { return &dumpSyntaxError{Offset: off, Msg: msg} }

// dumpSkipWS returns the index of the first non-whitespace byte of b at or after i.
func dumpSkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// dumpStringEnd returns the index just past the closing quote of the string whose opening quote
// is b[i]. It looks at eight bytes at a time for a quote or a backslash.
func dumpStringEnd(b []byte, i int) (int, error) {
	start := i
	i++
	for i < len(b) {
		if i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			q := w ^ (dumpLo * '"')
			e := w ^ (dumpLo * '\\')
			m := ((q - dumpLo) &^ q) | ((e - dumpLo) &^ e)
			if m &= dumpHi; m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		switch b[i] {
		case '"':
			return i + 1, nil
		case '\\':
			i += 2 // the escaped character, whatever it is
		default:
			i++
		}
	}
	return 0, dumpSyntax(start, "unterminated string")
}

// dumpValueEnd returns the index just past the JSON value that starts at b[i] (after optional
// whitespace).
func dumpValueEnd(b []byte, i int) (int, error) {
	i = dumpSkipWS(b, i)
	if i >= len(b) {
		return 0, dumpSyntax(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '"':
		return dumpStringEnd(b, i)
	case c == '{' || c == '[':
		return dumpNestedEnd(b, i)
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if bytes.HasPrefix(b[i:], []byte(lit)) {
				return i + len(lit), nil
			}
		}
		return 0, dumpSyntax(i, "invalid literal")
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		return j, nil
	default:
		return 0, dumpSyntax(i, fmt.Sprintf("unexpected character %q", c))
	}
}

// dumpStop marks the bytes dumpNestedEnd must look at; everything else is skipped.
var dumpStop = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// SWAR constants: one in each byte, and each byte's high bit.
const (
	dumpLo = 0x0101010101010101
	dumpHi = 0x8080808080808080
)

// dumpStopMask has the high bit set in the lowest byte of w that is a quote or a bracket (and
// possibly in some bytes after it). Setting bit 0x20 maps '[' onto '{' and ']' onto '}', so three
// byte compares cover five characters.
func dumpStopMask(w uint64) uint64 {
	q := w ^ (dumpLo * '"')
	w |= dumpLo * 0x20
	o := w ^ (dumpLo * '{')
	c := w ^ (dumpLo * '}')
	m := ((q - dumpLo) &^ q) | ((o - dumpLo) &^ o) | ((c - dumpLo) &^ c)
	return m & dumpHi
}

// dumpNestedEnd returns the index just past the object or array that starts at b[i], checking
// that brackets pair up. It is the parser's hot loop: it looks at eight bytes at a time for a
// quote or bracket, and skips strings with dumpStringEnd.
func dumpNestedEnd(b []byte, i int) (int, error) {
	var stackBuf [64]byte
	stack := stackBuf[:0]
	for i < len(b) {
		if i+8 <= len(b) {
			m := dumpStopMask(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else if !dumpStop[b[i]] {
			i++
			continue
		}
		switch c := b[i]; c {
		case '"':
			e, err := dumpStringEnd(b, i)
			if err != nil {
				return 0, err
			}
			i = e
			continue
		case '{':
			stack = append(stack, '}')
		case '[':
			stack = append(stack, ']')
		default: // '}', ']'
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return 0, dumpSyntax(i, fmt.Sprintf("unexpected %q", c))
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return i + 1, nil
			}
		}
		i++
	}
	return 0, dumpSyntax(i, "unexpected end of input")
}

// dumpIter walks the members of one JSON object (Key and Val) or the elements of one JSON array
// (Val), as raw bytes. Values are scanned lazily: a caller that walks into a value with Object
// or Array, to its end, and then calls After spares the parent from scanning that value again,
// so nested walks read each byte once.
//
// Iterators hold no pointer to each other (After is explicit) and keep the member name as
// offsets, so that they stay on the stack.
type dumpIter struct {
	b           []byte
	i           int  // where the container, or the next member or element, starts
	start       int  // where the container starts
	end         int  // just past the container, once Next has returned false without error
	open, close byte // '{' '}' or '[' ']'
	state       uint8
	vs, ve      int // the current value; ve < 0 until known
	ks, ke      int // the current member's name
	err         error
}

const (
	dumpIterStart  uint8 = iota
	dumpIterValue        // at a member or element
	dumpIterSingle       // an object standing for a one-element array, not yet returned
	dumpIterLast         // returned that object
	dumpIterDone
)

// dumpObject iterates over the members of the object raw. Anything but an object (null
// included) yields no members; only a broken object sets Err.
func dumpObject(raw []byte) dumpIter { return dumpIter{b: raw, open: '{', close: '}'} }

// dumpArray iterates over the elements of the array raw. A single object stands for a
// one-element list, as converting YAML to a protobuf Struct produces in v2 configs.
func dumpArray(raw []byte) dumpIter { return dumpNewArray(raw, 0) }

func dumpNewArray(b []byte, at int) dumpIter {
	it := dumpIter{b: b, i: at, start: at, open: '[', close: ']'}
	if i := dumpSkipWS(b, at); i < len(b) && b[i] == '{' {
		it.state, it.i = dumpIterSingle, i
	}
	return it
}

// Object iterates over the current value as an object.
func (it *dumpIter) Object() dumpIter {
	return dumpIter{b: it.b, i: it.vs, start: it.vs, open: '{', close: '}'}
}

// Array iterates over the current value as an array.
func (it *dumpIter) Array() dumpIter { return dumpNewArray(it.b, it.vs) }

// After tells it that child, made by its Object or Array and iterated to the end, has found
// where the current value ends.
func (it *dumpIter) After(child *dumpIter) {
	if child.state == dumpIterDone && child.err == nil && child.end > 0 && child.start == it.vs && it.state == dumpIterValue && it.ve < 0 {
		it.ve = child.end
	}
}

// Val returns the current member's value or the current element.
func (it *dumpIter) Val() []byte {
	if it.state != dumpIterValue && it.state != dumpIterLast {
		return nil
	}
	if it.ve < 0 {
		e, err := dumpValueEnd(it.b, it.vs)
		if err != nil {
			it.err, it.state = err, dumpIterDone
			return nil
		}
		it.ve = e
	}
	return it.b[it.vs:it.ve]
}

// Next advances to the next member or element and reports whether there is one.
func (it *dumpIter) Next() bool {
	b := it.b
	var i int
	switch it.state {
	case dumpIterDone:
		return false
	case dumpIterLast:
		return it.finish(it.ve)
	case dumpIterSingle:
		e, err := dumpNestedEnd(b, it.i)
		if err != nil {
			return it.fail(err)
		}
		it.vs, it.ve, it.state = it.i, e, dumpIterLast
		return true
	case dumpIterStart:
		i = dumpSkipWS(b, it.i)
		if i >= len(b) || b[i] != it.open {
			it.state = dumpIterDone
			return false
		}
		i = dumpSkipWS(b, i+1)
		if i < len(b) && b[i] == it.close {
			return it.finish(i + 1)
		}
	case dumpIterValue:
		if it.Val() == nil {
			return false
		}
		i = dumpSkipWS(b, it.ve)
		switch {
		case i < len(b) && b[i] == it.close:
			return it.finish(i + 1)
		case i < len(b) && b[i] == ',':
			i = dumpSkipWS(b, i+1)
			if i >= len(b) || b[i] == it.close {
				return it.fail(dumpSyntax(i, "expected a value after ','"))
			}
		default:
			return it.fail(dumpSyntax(i, fmt.Sprintf("expected ',' or '%c'", it.close)))
		}
	}
	if it.open == '{' {
		if i >= len(b) || b[i] != '"' {
			return it.fail(dumpSyntax(i, "expected a member name"))
		}
		e, err := dumpStringEnd(b, i)
		if err != nil {
			return it.fail(err)
		}
		it.ks, it.ke = i+1, e-1
		i = dumpSkipWS(b, e)
		if i >= len(b) || b[i] != ':' {
			return it.fail(dumpSyntax(i, "expected ':'"))
		}
		i = dumpSkipWS(b, i+1)
	}
	if i >= len(b) {
		return it.fail(dumpSyntax(i, "unexpected end of input"))
	}
	it.vs, it.ve, it.state = i, -1, dumpIterValue
	return true
}

func (it *dumpIter) fail(err error) bool {
	it.err, it.state = err, dumpIterDone
	return false
}

// finish ends the iteration at end, just past the container.
func (it *dumpIter) finish(end int) bool {
	it.state, it.end = dumpIterDone, end
	return false
}

// Key returns the current member's name, as written (escapes not decoded). It is kept as
// offsets so that Next stores no pointer into the iterator, which lets iterators stay on the
// stack.
func (it *dumpIter) Key() []byte { return it.b[it.ks:it.ke] }

// Err returns the syntax error that stopped the iteration, if any.
func (it *dumpIter) Err() error { return it.err }

// dumpField returns the raw value of the member key of the object raw, or nil.
func dumpField(raw []byte, key string) []byte {
	it := dumpObject(raw)
	for it.Next() {
		if dumpKeyIs(it.Key(), key) {
			return it.Val()
		}
	}
	return nil
}

// dumpKeyIs reports whether the member name k is the proto field name snake, also when the
// dump spells it in camelCase as protojson does by default.
func dumpKeyIs(k []byte, snake string) bool {
	if string(k) == snake {
		return true
	}
	if bytes.IndexByte(k, '_') >= 0 || len(k) >= len(snake) || !dumpHasUpper(k) {
		return false
	}
	return dumpSnake(k) == snake
}

func dumpHasUpper(k []byte) bool {
	for _, c := range k {
		if c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

// dumpSnake converts a camelCase member name to the proto field name.
func dumpSnake(k []byte) string {
	out := make([]byte, 0, len(k)+4)
	for _, c := range k {
		if c >= 'A' && c <= 'Z' {
			out = append(out, '_', c+'a'-'A')
			continue
		}
		out = append(out, c)
	}
	return string(out)
}

// dumpString decodes a raw JSON string; anything else gives "".
func dumpString(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return ""
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// dumpStringField is dumpString(dumpField(raw, key)).
func dumpStringField(raw []byte, key string) string { return dumpString(dumpField(raw, key)) }

// dumpIsNull reports whether raw is absent or JSON null.
func dumpIsNull(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}
