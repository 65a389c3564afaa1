package main

import (
	"strconv"
	"strings"
)

// safe returns s as it is when every rune of it is printable (strconv.IsPrint: letters, marks,
// numbers, punctuation, symbols and the ASCII space) and s quoted with strconv.Quote otherwise.
// Every string that comes from a model file (names, labels, metadata) goes through it before it is
// printed, so that a model cannot send escape sequences (clear the screen, set the window title,
// reorder text) to the user's terminal, nor break the column layout with tabs or newlines.
func safe(s string) string {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// safeList joins strings from a model with spaces; an element that holds a space (or is empty) is
// quoted too, so that the list stays unambiguous.
func safeList(list []string) string {
	out := make([]string, len(list))
	for i, s := range list {
		if q := safe(s); q != s || s == "" || strings.ContainsRune(s, ' ') {
			out[i] = strconv.Quote(s)
		} else {
			out[i] = s
		}
	}
	return strings.Join(out, " ")
}
