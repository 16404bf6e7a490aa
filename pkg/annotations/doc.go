// Package annotations is the one home of every kaiwo.silogen.ai/* key, with the documentation users see,
// and of their parsing: ParseOptions reads and checks an object's Kaiwo annotations one by one (the env
// file with ParseEnv), naming the key, the value and what is allowed.
package annotations
