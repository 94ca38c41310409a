package httpapi

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// unknownFields lists, by full JSON path ("location.foo"), every object
// key in data that t has no field for. encoding/json refuses the first
// such key but names it without its path, and a client told "foo" cannot
// tell which object it is in.
func unknownFields(data []byte, t reflect.Type) []string {
	if t == nil {
		return nil
	}
	var v any
	if json.Unmarshal(data, &v) != nil {
		return nil
	}
	var out []string
	walkUnknown(v, t, "", &out)
	return out
}

func walkUnknown(v any, t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch x := v.(type) {
	case map[string]any:
		keys := slices.Sorted(maps.Keys(x))
		switch t.Kind() {
		case reflect.Map:
			for _, k := range keys {
				walkUnknown(x[k], t.Elem(), joinPath(path, k), out)
			}
		case reflect.Struct:
			fields := jsonFields(t)
			for _, k := range keys {
				ft, ok := fieldType(fields, k)
				if !ok {
					*out = append(*out, joinPath(path, k))
					continue
				}
				walkUnknown(x[k], ft, joinPath(path, k), out)
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range x {
				walkUnknown(e, t.Elem(), path+"["+strconv.Itoa(i)+"]", out)
			}
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonFields maps the JSON names of t's fields to their types, with
// embedded structs flattened as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, shadowed := out[k]; !shadowed {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// fieldType finds key as encoding/json does: the exact name, else one
// that differs only in case.
func fieldType(fields map[string]reflect.Type, key string) (reflect.Type, bool) {
	if t, ok := fields[key]; ok {
		return t, true
	}
	for name, t := range fields {
		if strings.EqualFold(name, key) {
			return t, true
		}
	}
	return nil, false
}
