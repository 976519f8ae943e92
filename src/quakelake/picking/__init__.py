"""picking"""
