// Package canonical reads strict I-JSON (RFC 7493) and writes RFC 8785
// canonical JSON, the bytes statesync hashes and compares (docs/digest.md §2).
//
// A value is represented with plain Go types: nil, bool, float64 (every
// number: I-JSON integers are exact in a double), string, []any and
// map[string]any. The package does no I/O.
package canonical

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is how deeply arrays and objects may nest (`[[1]]` is 2 deep).
const MaxDepth = 128

// MaxSafeInteger is the largest integer magnitude I-JSON allows (2^53 - 1).
const MaxSafeInteger = 1<<53 - 1

// Kind names why a text was refused, as in conformance/canonical/vectors.json.
type Kind string

// The kinds of invalid input.
const (
	Malformed          Kind = "malformed"
	DuplicateKey       Kind = "duplicate_key"
	IntegerOutOfRange  Kind = "integer_out_of_range"
	NumberOutOfRange   Kind = "number_out_of_range"
	LoneSurrogate      Kind = "lone_surrogate"
	InvalidUTF8        Kind = "invalid_utf8"
	TooDeep            Kind = "too_deep"
	UnsupportedGoValue Kind = "unsupported_value"
)

// Error is a refused input: its kind, the byte offset where it was found and
// what was wrong.
type Error struct {
	Kind   Kind
	Offset int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid JSON (%s) at byte %d: %s", e.Kind, e.Offset, e.Reason)
}

// KindOf returns the kind of a canonical *Error in err's chain, or "".
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// Parse reads one strict I-JSON value: RFC 8259 syntax, no duplicate member
// names, integers within ±(2^53-1), finite doubles whose magnitude is not in
// (2^53-1, 1e21), valid UTF-8 with no lone surrogate escapes, at most
// MaxDepth levels of nesting.
func Parse(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, &Error{InvalidUTF8, firstInvalidUTF8(data), "the text is not UTF-8"}
	}
	p := parser{data: data}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.fail(Malformed, "data after the value")
	}
	return v, nil
}

func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(data)
}

type parser struct {
	data []byte
	pos  int
}

func (p *parser) fail(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Offset: p.pos, Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) literal(word string, v any) (any, error) {
	if len(p.data)-p.pos >= len(word) && string(p.data[p.pos:p.pos+len(word)]) == word {
		p.pos += len(word)
		return v, nil
	}
	return nil, p.fail(Malformed, "unexpected character")
}

func (p *parser) value(depth int) (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail(Malformed, "unexpected end of text")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.string()
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.fail(Malformed, "unexpected character %q", c)
	}
}

func (p *parser) object(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, p.fail(TooDeep, "nested deeper than %d levels", MaxDepth)
	}
	p.pos++ // {
	obj := map[string]any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail(Malformed, "expected a member name")
		}
		at := p.pos
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		if _, dup := obj[key]; dup {
			return nil, &Error{DuplicateKey, at, fmt.Sprintf("member %q appears twice", key)}
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail(Malformed, "expected ':'")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		obj[key] = v
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail(Malformed, "unterminated object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return obj, nil
		default:
			return nil, p.fail(Malformed, "expected ',' or '}'")
		}
	}
}

func (p *parser) array(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, p.fail(TooDeep, "nested deeper than %d levels", MaxDepth)
	}
	p.pos++ // [
	arr := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return arr, nil
	}
	for {
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail(Malformed, "unterminated array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return arr, nil
		default:
			return nil, p.fail(Malformed, "expected ',' or ']'")
		}
	}
}

func (p *parser) string() (string, error) {
	p.pos++ // opening quote
	var out []byte
	for {
		if p.pos >= len(p.data) {
			return "", p.fail(Malformed, "unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(out), nil
		case c < 0x20:
			return "", p.fail(Malformed, "raw control character in a string")
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, c)
			p.pos++
		}
	}
}

func (p *parser) escape() (rune, error) {
	if p.pos+1 >= len(p.data) {
		return 0, p.fail(Malformed, "unterminated escape")
	}
	c := p.data[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, p.fail(Malformed, "unknown escape \\%c", c)
	}
	first, err := p.hex4()
	if err != nil {
		return 0, err
	}
	if !utf16.IsSurrogate(first) {
		return first, nil
	}
	if first >= 0xDC00 || p.pos+1 >= len(p.data) || p.data[p.pos] != '\\' || p.data[p.pos+1] != 'u' {
		return 0, p.fail(LoneSurrogate, "lone surrogate \\u%04x", first)
	}
	p.pos += 2
	second, err := p.hex4()
	if err != nil {
		return 0, err
	}
	if second < 0xDC00 || second > 0xDFFF {
		return 0, p.fail(LoneSurrogate, "lone surrogate \\u%04x", first)
	}
	return utf16.DecodeRune(first, second), nil
}

func (p *parser) hex4() (rune, error) {
	if p.pos+4 > len(p.data) {
		return 0, p.fail(Malformed, "short \\u escape")
	}
	n, err := strconv.ParseUint(string(p.data[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, p.fail(Malformed, "bad \\u escape")
	}
	p.pos += 4
	return rune(n), nil
}

func (p *parser) number() (any, error) {
	start := p.pos
	integral := true
	if p.data[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.data) && p.data[p.pos] == '0':
		p.pos++
	case p.digits() == 0:
		return nil, p.fail(Malformed, "a number needs digits")
	}
	if p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		return nil, p.fail(Malformed, "leading zero")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		integral = false
		p.pos++
		if p.digits() == 0 {
			return nil, p.fail(Malformed, "a fraction needs digits")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		integral = false
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return nil, p.fail(Malformed, "an exponent needs digits")
		}
	}
	text := string(p.data[start:p.pos])
	if integral {
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n > MaxSafeInteger || n < -MaxSafeInteger {
			return nil, &Error{IntegerOutOfRange, start, fmt.Sprintf("integer %s is outside ±(2^53-1)", text)}
		}
		return float64(n), nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && math.IsInf(f, 0) {
		return nil, &Error{NumberOutOfRange, start, fmt.Sprintf("%s overflows a double", text)}
	}
	if err := CheckNumber(f); err != nil {
		return nil, &Error{IntegerOutOfRange, start, fmt.Sprintf("%s: %v", text, err)}
	}
	return f, nil
}

// CheckNumber refuses a double that is not finite or whose magnitude lies in
// (2^53-1, 1e21): RFC 8785 would print it as an integer beyond I-JSON's range.
func CheckNumber(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return errors.New("not a finite number")
	}
	if a := math.Abs(f); a > MaxSafeInteger && a < 1e21 {
		return fmt.Errorf("%v is an integer outside ±(2^53-1)", f)
	}
	return nil
}

func (p *parser) digits() int {
	n := 0
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
		n++
	}
	return n
}
