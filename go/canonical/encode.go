package canonical

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Encode writes v in RFC 8785 canonical form. v must be built from the types
// Parse returns (integers of Go's int types are accepted too); a value that
// is not I-JSON or nests deeper than MaxDepth is refused.
func Encode(v any) ([]byte, error) {
	var b []byte
	return appendValue(b, v, 0)
}

// Canonicalize parses strict I-JSON text and returns its canonical bytes.
func Canonicalize(data []byte) ([]byte, error) {
	v, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return Encode(v)
}

// Hash is SHA-256 of v's canonical bytes: the value hash of docs/digest.md §3.1.
func Hash(v any) ([32]byte, error) {
	b, err := Encode(v)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case float64:
		return appendNumber(b, x)
	case int:
		return appendNumber(b, float64(x))
	case int64:
		return appendNumber(b, float64(x))
	case string:
		if !utf8.ValidString(x) {
			return nil, &Error{InvalidUTF8, len(b), "a string is not UTF-8"}
		}
		return appendString(b, x), nil
	case []any:
		if depth+1 > MaxDepth {
			return nil, &Error{TooDeep, len(b), fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
		}
		b = append(b, '[')
		for i, item := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, item, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		if depth+1 > MaxDepth {
			return nil, &Error{TooDeep, len(b), fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
		}
		b = append(b, '{')
		for i, key := range SortedKeys(x) {
			if i > 0 {
				b = append(b, ',')
			}
			if !utf8.ValidString(key) {
				return nil, &Error{InvalidUTF8, len(b), "a member name is not UTF-8"}
			}
			b = appendString(b, key)
			b = append(b, ':')
			var err error
			if b, err = appendValue(b, x[key], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	default:
		return nil, &Error{UnsupportedGoValue, len(b), fmt.Sprintf("%T is not a JSON value", v)}
	}
}

// SortedKeys returns an object's member names in RFC 8785 order: by their
// UTF-16 code units.
func SortedKeys(obj map[string]any) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUTF16)
	return keys
}

func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = fmt.Appendf(b, "\\u%04x", c)
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

// appendNumber writes a double as ECMAScript's Number.prototype.toString does
// (RFC 8785 §3.2.2.3): shortest round-trip digits, fixed notation for
// exponents in [-6, 21), otherwise d.ddde±x.
func appendNumber(b []byte, f float64) ([]byte, error) {
	if err := CheckNumber(f); err != nil {
		return nil, &Error{IntegerOutOfRange, len(b), err.Error()}
	}
	if f == 0 {
		return append(b, '0'), nil
	}
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	// 'e' with precision -1 gives the shortest digits: d.ddde±xx.
	sci := strconv.FormatFloat(f, 'e', -1, 64)
	mantissa, exp, _ := strings.Cut(sci, "e")
	digits := strings.Replace(mantissa, ".", "", 1)
	e, _ := strconv.Atoi(exp)
	n := e + 1 // the value is 0.digits × 10^n
	k := len(digits)
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		b = append(b, strings.Repeat("0", n-k)...)
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, "0."...)
		b = append(b, strings.Repeat("0", -n)...)
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return b, nil
}

// Equal reports JSON equality: numbers by value, object members in any
// order, arrays element by element.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, Equal)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !Equal(xv, yv) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	default:
		return a == b
	}
}

// Clone returns a deep copy of a parsed value.
func Clone(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = Clone(item)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[k] = Clone(item)
		}
		return out
	default:
		return v
	}
}
