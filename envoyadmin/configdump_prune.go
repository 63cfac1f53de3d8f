package envoyadmin

import "bytes"

// Only the parts of a resource that the summary reads are handed to protojson: the pruner
// copies them into a small buffer, dropping the rest (metadata, endpoints, HTTP filters, access
// logs), which is most of a dump's bytes and most of what makes a full decode slow.

// dumpSpec says which members of a JSON object the parser reads. A member whose spec is nil is
// kept whole; one with a non-nil spec is pruned in turn (each element, for an array). Members
// not listed are dropped before protojson sees them.
type dumpSpec map[string]dumpSpec

// dumpPruner copies the parts of a resource that a dumpSpec keeps into a reusable buffer.
// Kept values that are "[redacted]", which Envoy writes into bytes fields (private keys) and
// which is not valid base64, become "".
type dumpPruner struct {
	buf []byte
	// capture names top-level members the caller reads itself; prune stores their values in
	// got, so the resource is walked once for both.
	capture []string
	got     [][]byte
}

// dumpRedacted is what Envoy prints instead of secret bytes.
var dumpRedacted = []byte(`"[redacted]"`)

// prune returns the members of raw that spec keeps, as JSON. The result is valid until the next
// call.
func (p *dumpPruner) prune(raw []byte, spec dumpSpec) ([]byte, error) {
	p.buf = p.buf[:0]
	root := dumpValueIter(raw)
	if err := p.appendPruned(&root, spec, p.capture); err != nil {
		return nil, err
	}
	return p.buf, nil
}

// dumpValueIter returns an iterator positioned at raw as its current value, from which Object
// and Array walk into it.
func dumpValueIter(raw []byte) dumpIter {
	return dumpIter{b: raw, state: dumpIterValue, vs: dumpSkipWS(raw, 0), ve: -1}
}

// appendPruned appends the current value of it, pruned by spec.
func (p *dumpPruner) appendPruned(it *dumpIter, spec dumpSpec, capture []string) error {
	if it.vs >= len(it.b) {
		return dumpSyntax(it.vs, "unexpected end of input")
	}
	switch it.b[it.vs] {
	case '{':
		p.buf = append(p.buf, '{')
		n := 0
		m := it.Object()
	members:
		for m.Next() {
			for c, key := range capture {
				if dumpKeyIs(m.Key(), key) {
					p.got[c] = m.Val()
					continue members
				}
			}
			child, ok := spec[string(m.Key())]
			if !ok && dumpHasUpper(m.Key()) {
				child, ok = spec[dumpSnake(m.Key())]
			}
			if !ok {
				continue
			}
			if n > 0 {
				p.buf = append(p.buf, ',')
			}
			n++
			p.buf = append(p.buf, '"')
			p.buf = append(p.buf, m.Key()...)
			p.buf = append(p.buf, '"', ':')
			if child == nil {
				p.appendRaw(m.Val())
				continue
			}
			if err := p.appendPruned(&m, child, nil); err != nil {
				return err
			}
		}
		if err := m.Err(); err != nil {
			return err
		}
		it.After(&m)
		p.buf = append(p.buf, '}')
	case '[':
		p.buf = append(p.buf, '[')
		n := 0
		e := it.Array()
		for e.Next() {
			if n > 0 {
				p.buf = append(p.buf, ',')
			}
			n++
			if err := p.appendPruned(&e, spec, nil); err != nil {
				return err
			}
		}
		if err := e.Err(); err != nil {
			return err
		}
		it.After(&e)
		p.buf = append(p.buf, ']')
	default:
		v := it.Val()
		if err := it.Err(); err != nil {
			return err
		}
		p.appendRaw(v)
	}
	return nil
}

func (p *dumpPruner) appendRaw(v []byte) {
	if bytes.Contains(v, dumpRedacted) {
		p.buf = append(p.buf, bytes.ReplaceAll(v, dumpRedacted, []byte(`""`))...)
		return
	}
	p.buf = append(p.buf, v...)
}
