//! Audio input and output for voicemcu. (Being written.)
