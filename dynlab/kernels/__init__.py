"""Triton kernels. Each kernel sits next to its pure-torch ``*_ref``; dispatchers
pick the kernel on CUDA and fall back to torch when Triton or a GPU is missing."""
