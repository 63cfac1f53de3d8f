package envoyadmin

import (
	"strings"
)

// resetErrorPrefix starts the body Envoy sends with a locally generated 503 when the upstream
// connection failed or was reset before response headers arrived.
const resetErrorPrefix = "upstream connect error or disconnect/reset before headers"

// resetReasons are Envoy's stream reset reasons as the 503 body spells them, longest first so
// that "local refused stream reset" is not read as "local reset". "connection failure" is what
// Envoy before 1.2x wrote for both local and remote connection failures.
var resetReasons = []string{
	"remote refused stream reset",
	"local refused stream reset",
	"remote connection failure",
	"local connection failure",
	"overload manager reset",
	"connection termination",
	"connection timeout",
	"connection failure",
	"protocol error",
	"remote reset",
	"local reset",
	"overflow",
}

// ParseResetError finds Envoy's "upstream connect error or disconnect/reset before headers"
// message in s and returns its parts. s may be the bare body, or a longer paste that quotes it
// (curl output, an application log, JSON with escaped quotes); the message ends at a newline,
// a quote or a backslash escape. ok is false when s holds no such message. Reason is empty
// when the message carries none, as in Envoy releases before reasons were added.
func ParseResetError(s string) (ResetError, bool) {
	i := strings.Index(strings.ToLower(s), resetErrorPrefix)
	if i < 0 {
		return ResetError{}, false
	}
	var e ResetError
	rest := s[i+len(resetErrorPrefix):]
	rest = strings.TrimLeft(rest, ". ")
	if after, ok := cutPrefixFold(rest, "retried and the latest "); ok {
		e.Retried = true
		rest = after
	}
	after, ok := cutPrefixFold(rest, "reset reason:")
	if !ok {
		return e, true
	}
	rest = strings.TrimLeft(after, " ")
	for _, r := range resetReasons {
		if len(rest) >= len(r) && strings.EqualFold(rest[:len(r)], r) {
			e.Reason = r
			rest = rest[len(r):]
			break
		}
	}
	if e.Reason == "" {
		// A reason this parser does not know: take it up to the next comma or the end.
		end := messageEnd(rest)
		if c := strings.IndexByte(rest[:end], ','); c >= 0 {
			end = c
		}
		e.Reason = strings.TrimSpace(rest[:end])
		rest = rest[end:]
	}
	if after, ok := cutPrefixFold(strings.TrimLeft(rest, " "), ", transport failure reason:"); ok {
		rest = strings.TrimLeft(after, " ")
		// A trailing '.' belongs to the sentence the message was pasted into.
		e.TransportFailure = strings.TrimRight(strings.TrimSpace(rest[:messageEnd(rest)]), ".")
	}
	return e, true
}

// messageEnd returns where an embedded Envoy message ends: at a line break, a quote, a
// backslash (an escaped quote or "\n" in a JSON paste) or '<' (an HTML page), else len(s).
func messageEnd(s string) int {
	if i := strings.IndexAny(s, "\r\n\"'\\<`"); i >= 0 {
		return i
	}
	return len(s)
}

// cutPrefixFold is strings.CutPrefix ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// responseFlagLong maps the long names Envoy writes with %RESPONSE_FLAGS_LONG% (and that some
// users paste) to the short flags of %RESPONSE_FLAGS%. The keys of the map plus the values are
// every flag Envoy defines.
var responseFlagLong = map[string]string{
	"FailedLocalHealthCheck":           "LH",
	"NoHealthyUpstream":                "UH",
	"UpstreamRequestTimeout":           "UT",
	"LocalReset":                       "LR",
	"UpstreamRemoteReset":              "UR",
	"UpstreamConnectionFailure":        "UF",
	"UpstreamConnectionTermination":    "UC",
	"UpstreamOverflow":                 "UO",
	"NoRouteFound":                     "NR",
	"DelayInjected":                    "DI",
	"FaultInjected":                    "FI",
	"RateLimited":                      "RL",
	"UnauthorizedExternalService":      "UAEX",
	"RateLimitServiceError":            "RLSE",
	"DownstreamConnectionTermination":  "DC",
	"UpstreamRetryLimitExceeded":       "URX",
	"StreamIdleTimeout":                "SI",
	"InvalidEnvoyRequestHeaders":       "IH",
	"DownstreamProtocolError":          "DPE",
	"UpstreamMaxStreamDurationReached": "UMSDR",
	"ResponseFromCacheFilter":          "RFCF",
	"NoFilterConfigFound":              "NFCF",
	"DurationTimeout":                  "DT",
	"UpstreamProtocolError":            "UPE",
	"NoClusterFound":                   "NC",
	"OverloadManagerTerminated":        "OM",
	"DnsResolutionFailed":              "DF",
	"DropOverload":                     "DO",
	"DownstreamRemoteReset":            "DR",
	"UnconditionalDropOverload":        "UDO",
}

// responseFlagShort is the set of short flags, built from responseFlagLong.
var responseFlagShort = func() map[string]bool {
	m := make(map[string]bool, len(responseFlagLong))
	for _, short := range responseFlagLong {
		m[short] = true
	}
	return m
}()

// IsKnownResponseFlag reports whether flag is one of Envoy's short response flags ("UF").
func IsKnownResponseFlag(flag string) bool { return responseFlagShort[flag] }

// ParseResponseFlags splits a %RESPONSE_FLAGS% value ("UF,URX") into its flags. "-" and "" give
// nil. Long names ("NoHealthyUpstream") become their short flag ("UH"); a flag Envoy does not
// define is kept as written, so that flags newer than this list are not lost (check it with
// IsKnownResponseFlag). Duplicates are dropped.
func ParseResponseFlags(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" || s == "-" {
		return nil
	}
	var flags []string
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" || f == "-" {
			continue
		}
		if short, ok := responseFlagLong[f]; ok {
			f = short
		}
		if !seen[f] {
			seen[f] = true
			flags = append(flags, f)
		}
	}
	return flags
}

// ParseResponseCodeDetails splits a %RESPONSE_CODE_DETAILS% value such as
// "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}" into
// its base ("upstream_reset_before_response_started"), the reset reason in the words of the 503
// body and ResetError.Reason ("connection failure") and the transport failure as the details
// spell it, with Envoy's '_' for spaces ("delayed_connect_error:_111"). Details without braces
// ("via_upstream", "response_timeout") are all base.
func ParseResponseCodeDetails(s string) (base, reason, transportFailure string) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return s, "", ""
	}
	base = s[:open]
	inner := s[open+1:]
	if end := strings.LastIndexByte(inner, '}'); end >= 0 {
		inner = inner[:end]
	}
	reason, transportFailure, _ = strings.Cut(inner, ",")
	// Reset reasons never contain '_' in Envoy's own spelling, so this restores it exactly.
	reason = strings.ReplaceAll(reason, "_", " ")
	return base, reason, transportFailure
}
