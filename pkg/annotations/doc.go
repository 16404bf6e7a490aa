// Package annotations is the one home of every kaiwo.silogen.ai/* key, with the documentation users see.
package annotations
