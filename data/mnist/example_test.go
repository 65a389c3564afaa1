package mnist_test

import (
	"fmt"

	"github.com/qatgo/qatgo/data/mnist"
)

func ExampleLoad() {
	train, test, err := mnist.Load("") // $QATGO_MNIST_DIR or the GoMNIST module cache
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(train.Len(), test.Len(), test.Rows, test.Cols)
	// Output: 60000 10000 28 28
}
