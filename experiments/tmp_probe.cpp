int expt_tmp_exp() { return 0; }
