package translate

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"

	"github.com/statesync/statesync/go/canonical"
)

type converter struct {
	pair string
	fn   func(any) (any, error)
}

var converters = map[string]converter{
	"rfc3339_to_unix_ms": {"unix_ms_to_rfc3339", rfc3339ToUnixMs},
	"unix_ms_to_rfc3339": {"rfc3339_to_unix_ms", unixMsToRFC3339},
	"seconds_to_ms":      {"ms_to_seconds", secondsToMs},
	"ms_to_seconds":      {"seconds_to_ms", msToSeconds},
	"int_to_string":      {"string_to_int", intToString},
	"string_to_int":      {"int_to_string", stringToInt},
	"string_to_array":    {"array_to_string", stringToArray},
	"array_to_string":    {"string_to_array", arrayToString},
}

// The instants a date-time may name: 0000-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z.
const (
	minMs = -62167219200000
	maxMs = 253402300799999
)

// integerOf reads a number whose value is an integer within I-JSON.
func integerOf(v any) (int64, error) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > canonical.MaxSafeInteger {
		return 0, fmt.Errorf("%v is not an integer", v)
	}
	return int64(f), nil
}

var dateTime = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$`)

func rfc3339ToUnixMs(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%v is not a string", v)
	}
	m := dateTime.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("%q is not an RFC 3339 date-time", s)
	}
	num := func(i int) int64 { n, _ := strconv.ParseInt(m[i], 10, 64); return n }
	year, month, day, hour, minute, second := num(1), num(2), num(3), num(4), num(5), num(6)
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 60 {
		return nil, fmt.Errorf("%q is not a valid date-time", s)
	}
	frac := (m[7] + "000")[:3]
	millis, _ := strconv.ParseInt(frac, 10, 64)
	var offset int64
	if m[8] == "" {
		oh, om := num(10), num(11)
		if oh > 23 || om > 59 {
			return nil, fmt.Errorf("%q has an invalid offset", s)
		}
		offset = oh*60 + om
		if m[9] == "-" {
			offset = -offset
		}
	}
	ms := (((daysFromCivil(year, month, day)*24+hour)*60+minute-offset)*60+second)*1000 + millis
	if ms < minMs || ms > maxMs {
		return nil, fmt.Errorf("%q is outside years 0000 to 9999", s)
	}
	return float64(ms), nil
}

func unixMsToRFC3339(v any) (any, error) {
	ms, err := integerOf(v)
	if err != nil {
		return nil, err
	}
	if ms < minMs || ms > maxMs {
		return nil, fmt.Errorf("%d ms is outside years 0000 to 9999", ms)
	}
	days := floorDiv(ms, 86400000)
	rest := ms - days*86400000
	y, mo, d := civilFromDays(days)
	return fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d,
		rest/3600000, rest/60000%60, rest/1000%60, rest%1000), nil
}

func secondsToMs(v any) (any, error) {
	f, ok := v.(float64)
	if !ok {
		return nil, fmt.Errorf("%v is not a number", v)
	}
	// The shortest decimal that reads back as f, times 1000 exactly, half to even.
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	if !ok {
		return nil, fmt.Errorf("%v is not a finite number", v)
	}
	r.Mul(r, big.NewRat(1000, 1))
	q, rem := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	// QuoRem truncates toward zero; compare twice the remainder with the denominator.
	twice := new(big.Int).Abs(rem)
	twice.Lsh(twice, 1)
	if c := twice.Cmp(r.Denom()); c > 0 || (c == 0 && q.Bit(0) == 1) {
		if rem.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() || q.Int64() > canonical.MaxSafeInteger || q.Int64() < -canonical.MaxSafeInteger {
		return nil, fmt.Errorf("%v s is beyond the I-JSON integer range in ms", v)
	}
	return float64(q.Int64()), nil
}

func msToSeconds(v any) (any, error) {
	ms, err := integerOf(v)
	if err != nil {
		return nil, err
	}
	return float64(ms) / 1000, nil
}

func intToString(v any) (any, error) {
	n, err := integerOf(v)
	if err != nil {
		return nil, err
	}
	return strconv.FormatInt(n, 10), nil
}

var decimal = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

func stringToInt(v any) (any, error) {
	s, ok := v.(string)
	if !ok || !decimal.MatchString(s) || s == "-0" {
		return nil, fmt.Errorf("%v is not a canonical decimal string", v)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > canonical.MaxSafeInteger || n < -canonical.MaxSafeInteger {
		return nil, fmt.Errorf("%s is beyond the I-JSON integer range", s)
	}
	return float64(n), nil
}

func stringToArray(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%v is not a string", v)
	}
	return []any{s}, nil
}

func arrayToString(v any) (any, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 1 {
		return nil, errors.New("the value is not an array of exactly one string")
	}
	s, ok := a[0].(string)
	if !ok {
		return nil, errors.New("the array's element is not a string")
	}
	return s, nil
}

func leap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if leap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// daysFromCivil counts days from 1970-01-01 in the proleptic Gregorian
// calendar (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func civilFromDays(z int64) (int64, int64, int64) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}
