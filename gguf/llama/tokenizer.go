package llama

// ByteTokens returns the 256 token strings of a byte-level vocabulary in the form of GPT-2's
// byte-to-unicode table (what llama.cpp's "gpt2" tokenizer expects): printable bytes ('!'..'~',
// '¡'..'¬', '®'..'ÿ') map to the same code point, the other 68 bytes, in order, to U+0100 onwards.
// Token i is byte i, and llama.cpp tokenizes and detokenizes any UTF-8 text exactly.
func ByteTokens() []string {
	toks := make([]string, 256)
	next := rune(256)
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xa1 <= b && b <= 0xac) || (0xae <= b && b <= 0xff) {
			toks[b] = string(rune(b))
		} else {
			toks[b] = string(next)
			next++
		}
	}
	return toks
}
