package envoyadmin

import (
	"bytes"
	"sort"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// Credentials a proxy's output, a pod's spec or a log may hold in free text, as evidence from
// many users showed them: tokens, header credentials, passwords in URLs and in code.
var (
	// jwt matches a JSON Web Token: base64url header and payload, both JSON objects (so both
	// start with "eyJ"), and a signature. Istio forwards and logs them in Authorization
	// headers and x-jwt-payload-style headers.
	jwt = lazyregexp.New(`eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*`)
	// authScheme matches an HTTP credential after its scheme: "Bearer <token>", "Basic <b64>",
	// "Token <t>", "ApiKey <k>", "Negotiate <t>" (Basic credentials can be 4 characters).
	authScheme = lazyregexp.New(`(?i)\b(bearer|basic|token|apikey|api-key|negotiate)(\s+|%20)[A-Za-z0-9._~+/=-]{4,}`)
	// digestAuth matches a Digest credential's parameters, up to the end of the value: its
	// quoted parameters whole in a log line, escaped ones in JSON.
	digestAuth = lazyregexp.New(`(?i)\b(digest)(\s+)(?:[^\n"\\]|\\.|"[^"\n\\]*")+`)
	// credentialHeader matches a header that carries a credential, written "name: value" (a log,
	// curl -v) or "name=value", up to the end of the value.
	credentialHeader = lazyregexp.New(`(?i)\b(x-api-key|api-key|x-auth-token|x-access-token|x-amz-security-token|private-token|x-vault-token|cookie|set-cookie|proxy-authorization)(\\?["']?\s*[:=]\s*\\?["']?)((?:[^\n"'\\{\[]|\\[^"'])(?:[^\n"'\\]|\\[^"'])*)`)
	// urlPassword matches the password of a URL's userinfo ("postgres://user:pass@host").
	urlPassword = lazyregexp.New(`(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@"'\\]+):([^@\s"'\\/]+)@`)
	// urlKey matches a DSN's key standing alone in the userinfo ("https://0123abcd...@sentry").
	urlKey = lazyregexp.New(`(?i)\b(https?://)([0-9a-f]{16,})@`)
	// queryCredential matches a credential in a URL's query ("?access_token=...").
	queryCredential = lazyregexp.New(`(?i)([?&](?:access_token|token|api_?key|apikey|secret|password|passwd|sig|signature|x-amz-signature)=)[^&\s"'\\#]+`)
	// keyedSecret matches "name = value" where the name says the value is a secret, in code
	// (a Lua filter's inline_code), command-line flags (--password=...) and config text.
	keyedSecret = lazyregexp.New(`(?i)\b([a-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api_?key|access_?key|private_?key|credentials?)[a-z0-9_]*)(\\?["']?\s*[:=]\s*\\?["']?)([^\s"',;)}\\{\[][^\s"',;)}\\]{2,})`)
	// privateKeyBlock matches a PEM or PGP private key block, its newlines raw or escaped, up to
	// its END line or the end of the text (a truncated paste).
	privateKeyBlock = lazyregexp.New(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)`)
)

// redactedRepl is the replacement of a whole match.
var redactedRepl = []byte(Redacted)

// nearPattern is a credential pattern and the lower-case words one of its matches holds: the
// case-insensitive patterns are run only around those words, since running them over a whole
// config dump costs tens of milliseconds a megabyte.
type nearPattern struct {
	re    *lazyregexp.Regexp
	words []string
	repl  func(m []byte, sub []int) []byte
	// after is how far after a word the pattern is tried; a value that runs past it is taken
	// to the first byte of stop.
	after int
	stop  string
	// pre, when set, says from the bytes after a word whether the pattern can match there,
	// without running it.
	pre func(text []byte, j int) bool
}

// keepGroups replaces what follows the groups before the last with [redacted].
func keepGroups(n int) func(m []byte, sub []int) []byte {
	return func(m []byte, sub []int) []byte {
		out := append([]byte{}, m[:sub[2*n+1]]...)
		return append(out, redactedRepl...)
	}
}

const (
	endOfValue = "\n\"'\\"          // a header's value ends at the line's or the string's end
	endOfWord  = " \t\n\"',;)}\\&#" // a token's or an assigned secret's
)

var nearPatterns = []nearPattern{
	{authScheme, []string{"bearer", "basic", "token", "apikey", "api-key", "negotiate"}, redactScheme, 512, endOfWord, nil},
	{digestAuth, []string{"digest"}, keepGroups(2), 512, endOfValue, nil},
	{credentialHeader, []string{"api-key", "-token", "cookie", "authorization"}, keepGroups(2), 512, endOfValue, assignedAfter},
	{urlPassword, []string{"://"}, func(m []byte, sub []int) []byte {
		return append(append([]byte{}, m[:sub[3]]...), []byte(":"+Redacted+"@")...)
	}, 512, endOfWord, userinfoAfter},
	{urlKey, []string{"://"}, func(m []byte, sub []int) []byte {
		return append(append([]byte{}, m[:sub[3]]...), []byte(Redacted+"@")...)
	}, 256, endOfWord, userinfoAfter},
	{queryCredential, []string{"token=", "key=", "secret=", "password=", "passwd=", "sig=", "signature="}, keepGroups(1), 256, endOfWord, nil},
	{keyedSecret, []string{"passw", "passphrase", "secret", "token", "api_key", "apikey", "api-key", "access_key", "accesskey", "private_key", "privatekey", "credential"}, redactKeyed, 256, endOfWord, assignedAfter},
}

// nearBefore is how far before its word a pattern's match may start (a name's prefix).
const nearBefore = 96

// RedactTokens replaces the credentials in text with "[redacted]": JSON Web Tokens, the
// credential of an Authorization scheme (Bearer, Basic, Token, ApiKey, Negotiate, Digest),
// credential headers (x-api-key, cookies, ...), passwords and keys in URLs, secrets assigned
// to a name that says so (password=, api_key = "..."), and PEM or PGP private key blocks.
// Names, schemes and separators are kept, so a reader still sees what was there. The
// replacement has no quote or backslash, so JSON stays JSON.
func RedactTokens(text []byte) []byte {
	if bytes.Contains(text, []byte("-----BEGIN ")) {
		text = privateKeyBlock.ReplaceAll(text, redactedRepl)
	}
	if bytes.Contains(text, []byte("eyJ")) {
		text = jwt.ReplaceAll(text, redactedRepl)
	}
	hits := findWords(bytes.ToLower(text))
	for k, p := range nearPatterns {
		if len(hits[k]) == 0 {
			continue
		}
		if t := redactNear(text, hits[k], p); len(t) != len(text) || (len(t) > 0 && &t[0] != &text[0]) {
			text = t
			hits = findWords(bytes.ToLower(text)) // offsets moved
		}
	}
	return text
}

// wordHit is where one of a pattern's words starts, and the word's length.
type wordHit struct{ at, n int }

// wordsByFirst indexes every pattern's words by their first byte, for findWords' single pass.
var wordsByFirst = func() (t [256][]struct {
	word    []byte
	pattern int
}) {
	for k, p := range nearPatterns {
		for _, w := range p.words {
			t[w[0]] = append(t[w[0]], struct {
				word    []byte
				pattern int
			}{[]byte(w), k})
		}
	}
	return t
}()

// findWords finds every pattern's words in lower-case text in one pass.
func findWords(lower []byte) [][]wordHit {
	hits := make([][]wordHit, len(nearPatterns))
	for i := 0; i < len(lower); i++ {
		for _, c := range wordsByFirst[lower[i]] {
			if bytes.HasPrefix(lower[i:], c.word) {
				hits[c.pattern] = append(hits[c.pattern], wordHit{i, len(c.word)})
			}
		}
	}
	return hits
}

// redactNear applies one pattern around each of its words: the matches that hold a word are
// replaced, each once.
func redactNear(text []byte, hits []wordHit, p nearPattern) []byte {
	type span struct {
		start, end int
		repl       []byte
	}
	var spans []span
	covered := -1 // the start of the last match kept
	for _, h := range hits {
		i, wl := h.at, h.n
		{
			if p.pre != nil && !p.pre(text, i+wl) {
				continue
			}
			start := max(0, i-nearBefore)
			for start > 0 && start > i-2*nearBefore && isWordByte(text[start-1]) {
				start-- // a pattern's \b must not fall inside a word cut by the window
			}
			end := min(len(text), i+wl+p.after)
			for _, sub := range p.re.FindAllSubmatchIndex(text[start:end], -1) {
				ms, me := start+sub[0], start+sub[1]
				if ms > i || me < i+wl || ms <= covered {
					continue
				}
				rel := make([]int, len(sub))
				for k, v := range sub {
					rel[k] = v - sub[0]
					if v < 0 {
						rel[k] = -1
					}
				}
				if me == end && end < len(text) {
					// The value runs past the window: take it to its end.
					ext := me
					for ext < len(text) && bytes.IndexByte([]byte(p.stop), text[ext]) < 0 {
						ext++
					}
					rel[1] += ext - me
					rel[len(rel)-1] += ext - me
					me = ext
				}
				spans = append(spans, span{ms, me, p.repl(text[ms:me], rel)})
				covered = ms
			}
		}
	}
	if len(spans) == 0 {
		return text
	}
	sort.Slice(spans, func(a, b int) bool { return spans[a].start < spans[b].start })
	out := make([]byte, 0, len(text))
	at := 0
	for _, sp := range spans {
		if sp.start < at {
			continue // overlaps one already replaced
		}
		out = append(out, text[at:sp.start]...)
		out = append(out, sp.repl...)
		at = sp.end
	}
	return append(out, text[at:]...)
}

// assignedAfter reports whether the name that runs on at j is assigned a scalar: name chars,
// an optional (escaped) quote, blanks, ':' or '=', blanks, an optional quote, and then not an
// object or a list.
func assignedAfter(text []byte, j int) bool {
	for j < len(text) && (isWordByte(text[j]) || text[j] == '-' || text[j] == '.') {
		j++
	}
	skip := func(set string) {
		for j < len(text) && bytes.IndexByte([]byte(set), text[j]) >= 0 {
			j++
		}
	}
	skip(`\"'`)
	skip(" \t")
	if j >= len(text) || (text[j] != ':' && text[j] != '=') {
		return false
	}
	j++
	skip(" \t")
	skip(`\"'`)
	return j < len(text) && text[j] != '{' && text[j] != '['
}

// userinfoAfter reports whether the URL whose "://" ends at j has a userinfo: an '@' before
// its host ends.
func userinfoAfter(text []byte, j int) bool {
	for k := j; k < len(text) && k < j+256; k++ {
		switch text[k] {
		case '@':
			return true
		case '/', ' ', '\t', '\n', '"', '\'', '\\':
			return false
		}
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// redactScheme replaces the credential after an Authorization scheme when it looks like one:
// a digit, a capital or a base64 sign in it, or 20 characters; "basic auth failed" and "token
// expired" are prose.
func redactScheme(m []byte, sub []int) []byte {
	cred := m[sub[5]:]
	if len(cred) < 20 && !bytes.ContainsAny(cred, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/=") {
		return m
	}
	out := append([]byte{}, m[:sub[5]]...)
	return append(out, redactedRepl...)
}

// redactKeyed replaces the value of a keyedSecret match, keeping what is already redacted.
func redactKeyed(m []byte, sub []int) []byte {
	value := m[sub[6]:sub[7]]
	if bytes.Equal(value, redactedRepl) || bytes.HasPrefix(value, []byte("[redacted")) || !bytes.ContainsAny(bytes.ToLower(value), "abcdefghijklmnopqrstuvwxyz") {
		return m // already redacted, or a number (max_tokens: 100), not a secret
	}
	out := append([]byte{}, m[:sub[6]]...)
	return append(out, redactedRepl...)
}
